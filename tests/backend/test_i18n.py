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


SWEDISH_PO = ROOT / "backend" / "i18n" / "sv" / "LC_MESSAGES" / "messages.po"
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\{[^}]*\}\}|\{\w+\}")


def test_every_string_has_a_swedish_translation() -> None:
    with COMMITTED_POT.open("rb") as handle:
        template = read_po(handle)
    with SWEDISH_PO.open("rb") as handle:
        swedish = read_po(handle)
    missing = []
    for message in template:
        if not message.id:
            continue
        translated = swedish.get(message.id)
        strings = translated.string if translated is not None else None
        done = all(strings) if isinstance(strings, tuple) else bool(strings)
        if translated is None or not done or translated.fuzzy:
            missing.append(message.id if isinstance(message.id, str) else message.id[0])
    assert not missing, (
        f"{len(missing)} string(s) have no Swedish translation. Run `make messages`, then fill in "
        "their msgstr in backend/i18n/sv/LC_MESSAGES/messages.po:\n"
        + "\n".join(f"  {text!r}" for text in missing)
    )


def test_swedish_translations_keep_every_placeholder() -> None:
    with SWEDISH_PO.open("rb") as handle:
        swedish = read_po(handle)
    broken = []
    for message in swedish:
        if not message.id or not message.string:
            continue
        source = message.id[-1] if isinstance(message.id, tuple) else message.id
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(PLACEHOLDER.findall(source))
        # A singular may name its number in words ("this problem"); the plural must keep it.
        if any(not set(PLACEHOLDER.findall(text)) >= wanted - {"%(num)d"} for text in strings) or (
            set(PLACEHOLDER.findall(strings[-1])) != wanted
        ):
            broken.append(source)
    assert not broken, f"translations that lost or invented a placeholder: {broken}"


def test_dates_numbers_and_plurals_follow_the_language_and_time_zone() -> None:
    from datetime import UTC, datetime, timedelta

    from backend.i18n import formats

    moment = datetime(2026, 11, 27, 13, 48, 30, 807435, tzinfo=UTC)
    with i18n.using(i18n.catalogs.get("sv")):
        i18n.activate_locale("sv")
        i18n.activate_time_zone("Europe/Stockholm")
        assert formats.format_datetime(moment) == "27 nov. 2026 14:48 CET"
        # ISO text as JSON columns hold it (consent times) reads the same.
        assert formats.format_datetime(moment.isoformat()) == "27 nov. 2026 14:48 CET"
        assert formats.format_number(12345.5) == "12\xa0345,5"
        assert formats.format_duration(timedelta(days=2, hours=5, minutes=3)) == "2 dygn 5 timmar"
        assert i18n.ngettext("%(num)d contact", "%(num)d contacts", 3) % {"num": 3} == "3 kontakter"
        i18n.activate_locale("en")
        i18n.activate_time_zone("America/New_York")
        assert formats.format_datetime(moment) == "Nov 27, 2026 08:48 EST"
        assert formats.format_number(12345.5) == "12,345.5"
