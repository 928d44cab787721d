"""Translations: the committed .pot matches the sources, and catalogs switch the language."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from backend import i18n
from backend.templating import create_environment

ROOT = Path(__file__).resolve().parents[2]
COMMITTED_POT = ROOT / "backend" / "i18n" / "messages.pot"


def _msgids(path: Path) -> set[str | tuple[str, ...]]:
    with path.open("rb") as handle:
        catalog = read_po(handle)
    return {message.id for message in catalog if message.id}


def test_committed_messages_pot_is_up_to_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = tmp_path / "messages.pot"
    monkeypatch.chdir(ROOT)  # the extraction map's paths are relative to the repository root
    args = [
        "pybabel",
        "-q",
        "extract",
        "-F",
        "backend/i18n/babel.cfg",
        "-k",
        "N_",
        "--no-location",
        "-o",
    ]
    CommandLineInterface().run([*args, str(fresh), "."])
    expected, committed = _msgids(fresh), _msgids(COMMITTED_POT)
    assert expected, "extraction found no messages at all"
    assert expected == committed, (
        "backend/i18n/messages.pot is out of date: run `make messages`.\n"
        f"missing: {sorted(map(str, expected - committed))[:10]}\n"
        f"stale: {sorted(map(str, committed - expected))[:10]}"
    )


def _swedish_catalogs(directory: Path) -> i18n.Catalogs:
    catalog = Catalog(locale="sv", domain="messages")
    catalog.add("Flows", "Flöden")
    catalog.add(("%(num)d contact", "%(num)d contacts"), ("%(num)d kontakt", "%(num)d kontakter"))
    target = directory / "sv" / "LC_MESSAGES"
    target.mkdir(parents=True)
    with (target / "messages.mo").open("wb") as handle:
        write_mo(handle, catalog)
    return i18n.Catalogs(directory)


def test_a_compiled_catalog_translates_python_and_templates(tmp_path: Path) -> None:
    catalogs = _swedish_catalogs(tmp_path)
    assert catalogs.locales == ["en", "sv"]
    assert catalogs.negotiate("sv-SE,sv;q=0.9,en;q=0.8") == "sv"
    assert catalogs.negotiate("de-DE,fr;q=0.5") == "en"
    assert catalogs.negotiate(None) == "en"

    template = create_environment().from_string(
        '{{ _("Flows") }} / {{ ngettext("%(num)d contact", "%(num)d contacts", 3) }}'
    )
    with i18n.using(catalogs.get("sv")):
        assert i18n._("Flows") == "Flöden"
        assert template.render() == "Flöden / 3 kontakter"
    assert i18n._("Flows") == "Flows"  # English again outside the block
    assert template.render() == "Flows / 3 contacts"


def test_templates_use_the_gettext_helpers() -> None:
    """A cheap guard against English typed straight into templates' headings."""
    for path in (ROOT / "frontend" / "templates").rglob("*.html"):
        for heading in re.findall(r"<h[12][^>]*>([^<{]+)</h[12]>", path.read_text()):
            assert not heading.strip(), f"{path.name}: untranslated heading {heading!r}"
