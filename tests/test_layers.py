"""Layers point one way (DESIGN principle 10): the import graph has no reverse edge.

Walks every module of ``nodes/`` and ``runtime/`` with ``ast`` and fails on an
import that points back up: runtime -> backend, nodes -> backend, nodes ->
runtime (except the runtime parts the SDK offers node authors, below), and
the SDK -> anything of ours outside the SDK. Imports under ``TYPE_CHECKING``
count too: a layer that needs another's types depends on it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("backend", "runtime", "nodes")

# What node code may use besides the SDK: the rule language (conditions,
# audiences, event filters). The template language is the SDK's own.
NODE_ALLOWED = ("nodes", "runtime.rules")
# Who may import what, by the importing package.
ALLOWED: dict[str, tuple[str, ...]] = {
    "nodes.sdk": ("nodes.sdk",),
    "nodes": NODE_ALLOWED,
    "runtime": ("runtime", "nodes"),
}


def _module(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, root: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    module = _module(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                yield node.lineno, ".".join([*base, node.module or ""]).rstrip(".")
            elif node.module:
                yield node.lineno, node.module


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def reverse_edges(root: Path = ROOT) -> list[str]:
    """Every import in nodes/ and runtime/ that points where its layer may not."""
    problems = []
    for layer in ("nodes", "runtime"):
        for path in sorted((root / layer).rglob("*.py")):
            module = _module(path, root)
            rule = "nodes.sdk" if _within(module, ("nodes.sdk",)) else layer
            for line, target in _imports(path, root):
                if not _within(target, OURS) or _within(target, ALLOWED[rule]):
                    continue
                problems.append(f"{path.relative_to(root)}:{line} {module} imports {target}")
    return problems


def test_no_layer_imports_one_above_it() -> None:
    assert reverse_edges() == []


@pytest.mark.parametrize(
    ("where", "source"),
    [
        ("runtime/x.py", "from backend.settings import Settings\n"),
        ("runtime/x.py", "import backend.audit\n"),
        ("nodes/builtin/x.py", "from backend.i18n import N_\n"),
        ("nodes/builtin/x.py", "from runtime.profiles import EVENT_HISTORY_DAYS\n"),
        ("nodes/sdk/x.py", "from runtime.rules import evaluate\n"),
        ("nodes/sdk/x.py", "from ..builtin import common\n"),
        ("runtime/x.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
         "    from backend.auth.principal import Principal\n"),
    ],
)  # fmt: skip
def test_the_walk_finds_a_reverse_edge(tmp_path: Path, where: str, source: str) -> None:
    for layer in ("nodes/sdk", "nodes/builtin", "runtime"):
        (tmp_path / layer).mkdir(parents=True, exist_ok=True)
    (tmp_path / where).write_text(source, encoding="utf-8")
    assert len(reverse_edges(tmp_path)) == 1


def test_allowed_edges_pass(tmp_path: Path) -> None:
    (tmp_path / "runtime").mkdir()
    (tmp_path / "nodes" / "builtin").mkdir(parents=True)
    (tmp_path / "runtime" / "x.py").write_text("from nodes.sdk import Outcome\n")
    (tmp_path / "nodes" / "builtin" / "x.py").write_text(
        "from nodes.sdk import N_\nfrom runtime.rules import evaluate\nfrom . import common\n"
    )
    assert reverse_edges(tmp_path) == []
