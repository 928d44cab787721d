"""The runtime reads settings only through ``RuntimeSettings``, and the app's settings have them.

mypy (strict on runtime/) checks every read of a value typed ``RuntimeSettings``;
this test catches the reads it cannot see: a ``getattr(settings, "...")``, a
settings object that reached a function as ``Any``, a dict-typed context.
It reads the source of runtime/ for every ``<...>settings.<name>`` and
``getattr(<...>settings, "<name>")`` and fails on a name the protocol lacks.
"""

from __future__ import annotations

import ast
from pathlib import Path

from backend.settings import Settings
from runtime.graph import FlowSettings
from runtime.settings import RuntimeSettings

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"


def _protocol() -> set[str]:
    return {name for name in vars(RuntimeSettings) if not name.startswith("_")}


def _is_settings(node: ast.expr) -> bool:
    """``settings``, ``self.settings``, ``rt.settings``, ``setup.settings``..."""
    return (isinstance(node, ast.Name) and node.id == "settings") or (
        isinstance(node, ast.Attribute) and node.attr == "settings"
    )


def settings_reads(source: str) -> set[str]:
    """The names read off anything called ``settings`` in ``source``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and _is_settings(node.value):
            found.add(node.attr)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and len(node.args) >= 2
            and _is_settings(node.args[0])
            and isinstance(node.args[1], ast.Constant)
        ):
            found.add(str(node.args[1].value))
    return found


def test_every_setting_the_runtime_reads_is_in_the_protocol() -> None:
    # A flow's own settings (reentry, exit rules) are also called "settings" in runtime/.
    allowed = _protocol() | set(FlowSettings.model_fields)
    unknown = {
        f"{path.relative_to(RUNTIME.parent)}: {name}"
        for path in sorted(RUNTIME.rglob("*.py"))
        for name in settings_reads(path.read_text())
        if name not in allowed
    }
    assert unknown == set(), "read by the runtime but missing from RuntimeSettings"


def test_the_check_sees_plain_and_getattr_reads() -> None:
    source = "def f(rt, settings):\n    rt.settings.a\n    settings.b\n    getattr(settings, 'c')\n"
    assert settings_reads(source) == {"a", "b", "c"}


def test_the_apps_settings_have_everything_the_protocol_names() -> None:
    settings = Settings(_env_file=None, environment="test", secret_key="s")  # type: ignore[call-arg]
    assert [name for name in sorted(_protocol()) if not hasattr(settings, name)] == []
