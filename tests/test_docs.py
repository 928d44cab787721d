"""The README and docs/ stand alone: every path they point at is a file in this repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Markdown links [text](target) and code spans naming a file, such as `../x/DESIGN.md`.
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
SPAN = re.compile(r"`([^`\s]*\.(?:md|py|toml|ini|sh|js|css|html))`")


def _targets(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    # A code span starting with "/" is a URL path the app serves (`/static/...`), not a file.
    spans = [t for t in SPAN.findall(text) if not t.startswith("/")]
    return [t for t in LINK.findall(text) + spans if "://" not in t]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_page_points_outside_the_repository(page: Path) -> None:
    outside = [t for t in _targets(page) if not (page.parent / t).resolve().is_relative_to(ROOT)]
    assert outside == [], f"{page.name} points outside the repository: {outside}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_resolves(page: Path) -> None:
    links = [t for t in LINK.findall(page.read_text(encoding="utf-8")) if "://" not in t]
    missing = [t for t in links if not (page.parent / t).exists()]
    assert missing == [], f"{page.name} links to missing files: {missing}"


def test_the_readme_links_the_architecture_page() -> None:
    assert "](docs/architecture.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
