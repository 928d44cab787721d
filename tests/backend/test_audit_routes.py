"""The audit guard: every state-changing route says what it writes to the audit log.

A new POST/PUT/PATCH/DELETE handler must carry ``audited("thing.done")`` (and
record that action) or ``unaudited("why")`` in its ``opt``; ``create_app``
refuses one that carries neither, and an ``unaudited`` route must be on the
reviewed list below. To add a route: declare it, record the action in the same
transaction as the change (``backend.audit.record``), and, only for routes no
person or API key changes shared state through, add it here with its reason.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest
from litestar import Litestar, post
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.app import create_app
from backend.audit import (
    Unaudited,
    audited,
    changing_handlers,
    declared_audit,
    record,
    unaudited,
)
from backend.auth.guards import role
from backend.deps import Actor, Db
from backend.models import AuditEntry, Role, Task
from tests.backend.web.support import add_user, post_form, settings_for, sign_in

BACKEND = Path(__file__).resolve().parents[2] / "backend"

# Reviewed: routes that change state without an audit entry, each for the reason it declares.
REVIEWED_UNAUDITED = {
    # Read-only work sent as POST (a rule in the body).
    "POST /api/v1/audiences/count",
    # Customer data an API key sends in: the events and contacts are the record.
    "POST /api/v1/batch/identify",
    "POST /api/v1/batch/track",
    "POST /api/v1/identify",
    "POST /api/v1/track",
    # Visitors and customers acting for themselves (forms, unsubscribe links, the snippet).
    "POST /f/confirm",
    "POST /f/{slug:str}",
    "POST /preferences/{token:str}",
    "POST /u/{token:str}",
    "POST /p/v1/events",
    "POST /p/v1/identify",
    # Providers' and outside systems' callbacks, by secret URL.
    "POST /hooks/email/bounce/{token:str}",
    "POST /hooks/in/{token:str}",
    "POST /hooks/sms/inbound/{token:str}",
    "POST /hooks/sms/status/{token:str}",
    # Draft edits: audited at publish, with a diff against the previous version.
    "POST /flows/{flow_id:int}/edit/edges",
    "POST /flows/{flow_id:int}/edit/edges/delete",
    "POST /flows/{flow_id:int}/edit/import",
    "POST /flows/{flow_id:int}/edit/nodes",
    "POST /flows/{flow_id:int}/edit/nodes/{node_id:str}/config",
    "POST /flows/{flow_id:int}/edit/nodes/{node_id:str}/delete",
    "POST /flows/{flow_id:int}/edit/nodes/{node_id:str}/label",
    "POST /flows/{flow_id:int}/edit/nodes/{node_id:str}/move",
    "POST /flows/{flow_id:int}/edit/paste",
    "POST /flows/{flow_id:int}/edit/redo",
    "POST /flows/{flow_id:int}/edit/selection/delete",
    "POST /flows/{flow_id:int}/edit/selection/move",
    "POST /flows/{flow_id:int}/edit/tidy",
    "POST /flows/{flow_id:int}/edit/undo",
    "POST /flows/{flow_id:int}/edit/versions/{number:int}/restore",
    # Test mode walks the draft for a sample customer and stores nothing.
    "POST /flows/{flow_id:int}/edit/test",
}


@pytest.fixture(scope="module")
def app() -> Litestar:
    return create_app(settings_for("sqlite+aiosqlite:///:memory:"))


@functools.cache  # the sources do not change during a run; parsing them all takes a second
def _recorded_actions() -> tuple[frozenset[str], frozenset[str]]:
    """String constants (and f-string prefixes) in backend code, outside audit declarations."""
    literals: set[str] = set()
    prefixes: set[str] = set()
    for path in BACKEND.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        declarations = {
            id(arg)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("audited", "unaudited")
            for arg in node.args
        }
        for node in ast.walk(tree):
            if id(node) in declarations:
                continue
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                literals.add(node.value)
            elif isinstance(node, ast.JoinedStr) and node.values:
                head = node.values[0]
                if isinstance(head, ast.Constant) and isinstance(head.value, str):
                    prefixes.add(head.value)
    return frozenset(literals), frozenset(prefixes)


def _problems(app: Litestar) -> list[str]:
    """Everything the guard objects to in ``app``'s state-changing routes."""
    literals, prefixes = _recorded_actions()
    problems = []
    for name, handler in changing_handlers(app):
        declared = declared_audit(handler)
        if declared is None:
            problems.append(f"{name}: declares neither audited(...) nor unaudited(...)")
        elif isinstance(declared, Unaudited):
            if name not in REVIEWED_UNAUDITED:
                problems.append(f"{name}: unaudited ({declared.reason}) but not reviewed")
        else:
            for action in declared:
                stem = action.removesuffix("*")
                found = (
                    any(text.startswith(stem) for text in literals | prefixes)
                    if action.endswith("*")
                    else action in literals
                )
                if not found:
                    problems.append(f"{name}: declares {action!r}, which nothing records")
    return problems


def test_every_state_changing_route_is_audited_or_reviewed(app: Litestar) -> None:
    assert _problems(app) == []
    unaudited_now = {
        name
        for name, handler in changing_handlers(app)
        if isinstance(declared_audit(handler), Unaudited)
    }
    # A reviewed route that is gone (or now audited) leaves the list too.
    assert unaudited_now == REVIEWED_UNAUDITED


def test_a_new_route_without_a_declaration_is_refused_at_start() -> None:
    @post("/runs/planted-bulk-retry", opt=role(Role.admin))
    async def planted() -> None:
        return None

    with pytest.raises(RuntimeError, match="POST /runs/planted-bulk-retry"):
        create_app(settings_for("sqlite+aiosqlite:///:memory:"), extra_routes=[planted])


def test_the_guard_catches_unreviewed_and_unrecorded_declarations() -> None:
    @post("/runs/planted-cancel", opt=role(Role.admin) | unaudited("forgot to review"))
    async def unreviewed() -> None:
        return None

    @post("/runs/planted-winner", opt=role(Role.marketer) | audited("flow.planted_winner"))
    async def unrecorded() -> None:
        return None

    @post("/runs/planted-retry", opt=role(Role.admin) | audited("flow.published"))
    async def declared_and_recorded() -> None:
        return None

    app = create_app(
        settings_for("sqlite+aiosqlite:///:memory:"),
        extra_routes=[unreviewed, unrecorded, declared_and_recorded],
    )
    assert sorted(_problems(app)) == [
        "POST /runs/planted-cancel: unaudited (forgot to review) but not reviewed",
        "POST /runs/planted-winner: declares 'flow.planted_winner', which nothing records",
    ]


async def test_in_tests_an_audited_route_that_changes_data_without_an_entry_fails(
    db_url: str, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The guard's second half: every web test that calls a route checks its declaration."""

    @post("/runs/planted-forgetful", opt=role(Role.admin) | audited("task.completed"))
    async def forgetful(db: Db) -> None:
        db.add(Task(title="Ring Åke"))

    @post("/runs/planted-careful", opt=role(Role.admin) | audited("task.completed"))
    async def careful(db: Db, actor: Actor) -> None:
        task = Task(title="Ring Åke")
        db.add(task)
        await db.flush()
        record(db, actor, "task.completed", task)

    app = create_app(settings_for(db_url), extra_routes=[forgetful, careful])
    await add_user(sessions, "admin@example.com", Role.admin)
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        await sign_in(client, "admin@example.com")
        refused = await post_form(client, "/runs/planted-forgetful", {})
        assert refused.status_code == 500
        done = await post_form(client, "/runs/planted-careful", {})
        assert done.status_code == 201
    async with sessions() as db:
        # The forgetful change was rolled back; the careful one is there with its entry.
        assert await db.scalar(select(func.count()).select_from(Task)) == 1
        assert (
            await db.scalar(select(func.count()).where(AuditEntry.action == "task.completed")) == 1
        )
