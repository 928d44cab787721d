"""Install a plugin package for one test: its distribution metadata (entry points) on ``sys.path``.

``importlib.metadata`` then finds its entry points exactly as it finds those of
a package ``pip install`` put in site-packages; ``monkeypatch`` takes it off
the path again after the test.

``remember_entry_points()`` (tests/conftest.py) keeps what a look-up found
until ``sys.path`` or one of its folders changes: each web test's app start-up
looks up node types and channels, and reading the metadata of every installed
package twice cost more than many a test.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

import nodes.sdk.registry
import runtime.delivery.plugins

# The modules that look entry points up, each through its own ``entry_points`` name.
_LOOKERS = (nodes.sdk.registry, runtime.delivery.plugins)


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


def _path_state() -> tuple[tuple[str, int], ...]:
    """``sys.path`` with each folder's modification time: installing a package into a folder
    adds a ``.dist-info`` folder to it, which changes its time (importlib's own caches
    of folder listings go by the same rule)."""
    state = []
    for entry in sys.path:
        try:
            state.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            state.append((entry, -1))
    return tuple(state)


def remembering(
    look_up: Callable[..., metadata.EntryPoints] = metadata.entry_points,
) -> Callable[..., metadata.EntryPoints]:
    """``importlib.metadata.entry_points``, answered again from memory while nothing it
    reads from has changed."""
    found: dict[tuple[Any, ...], metadata.EntryPoints] = {}

    def entry_points(**params: Any) -> metadata.EntryPoints:
        key = (_path_state(), tuple(sorted(params.items())))
        if key not in found:
            found[key] = look_up(**params)
        return found[key]

    return entry_points


def remember_entry_points() -> None:
    """Have the node-type and channel look-ups answer from memory (see the module docstring)."""
    shared = remembering()
    for module in _LOOKERS:
        module.entry_points = shared  # type: ignore[attr-defined]
