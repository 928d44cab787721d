"""Install a plugin package for one test: its distribution metadata (entry points) on ``sys.path``.

``importlib.metadata`` then finds its entry points exactly as it finds those of
a package ``pip install`` put in site-packages; ``monkeypatch`` takes it off
the path again after the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def install(
    site: Path, monkeypatch: pytest.MonkeyPatch, name: str, groups: dict[str, dict[str, str]]
) -> None:
    """Install a distribution's metadata (its entry points) into ``site`` and put it on the path."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = []
    for group, entries in groups.items():
        lines.append(f"[{group}]")
        lines += [f"{key} = {value}" for key, value in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(site))
