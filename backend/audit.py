"""The audit log: every change a person or API key makes (and every sign-in attempt) leaves a row.

``record`` only adds the row to the caller's session, so the entry commits or
rolls back together with the change it describes.

Every state-changing route (POST, PUT, PATCH, DELETE) says in its ``opt`` what
it writes to the log, next to its role::

    @post("/runs/retry", opt=role(Role.admin) | audited("run.retried"))

or, for the few that a person's change does not pass through (a visitor's form
post, the tracking pixel, a draft edit that is audited when published), why not::

    @post("/f/{slug:str}", opt=public() | unaudited("a visitor's form post"))

``create_app`` refuses to start with a state-changing handler that declares
neither, and ``tests/backend/test_audit_routes.py`` fails on an ``unaudited``
route missing from its reviewed list and on a declared action nothing records.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.handlers.base import BaseRouteHandler
from litestar.routes import HTTPRoute
from sqlalchemy import Result, event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session

from backend.auth.principal import Principal
from backend.models import AuditEntry, Base, utcnow

Target = Base | tuple[str, object] | None

AUDIT_KEY = "audit"
CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Unaudited:
    """Why a state-changing route writes no audit entry (see ``unaudited``)."""

    reason: str


# Reasons shared by several routes.
DRAFT_EDIT = "a draft edit: audited when published, with a diff against the previous version"
INGESTION = "customer data an API key sends in; the event and contact rows record it"


def audited(*actions: str) -> dict[str, Any]:
    """Route ``opt``: the audit actions (``"user.created"``) this handler records."""
    if not actions:
        raise ValueError("audited() needs the actions the handler records")
    return {AUDIT_KEY: actions}


def unaudited(reason: str) -> dict[str, Any]:
    """Route ``opt`` for a state-changing route that records nothing, and why."""
    return {AUDIT_KEY: Unaudited(reason)}


def declared_audit(handler: BaseRouteHandler) -> tuple[str, ...] | Unaudited | None:
    """What ``handler`` declared with ``audited``/``unaudited``; None when it declared nothing."""
    declared = handler.opt.get(AUDIT_KEY)
    if isinstance(declared, Unaudited) or (
        isinstance(declared, tuple) and declared and all(isinstance(a, str) for a in declared)
    ):
        return declared
    return None


def changing_handlers(app: Litestar) -> Iterator[tuple[str, HTTPRouteHandler]]:
    """``("METHOD /path", handler)`` for every state-changing route handler of ``app``."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            methods = sorted(set(handler.http_methods) & CHANGING_METHODS)
            if methods:
                yield f"{','.join(methods)} {route.path}", handler


def unaccounted_routes(app: Litestar) -> list[str]:
    """State-changing routes that declare neither ``audited(...)`` nor ``unaudited(...)``."""
    return [name for name, handler in changing_handlers(app) if declared_audit(handler) is None]


def _target_ref(target: Target) -> tuple[str | None, str | None]:
    if target is None:
        return None, None
    if isinstance(target, tuple):
        kind, ident = target
        return kind, None if ident is None else str(ident)
    ident = getattr(target, "id", None)
    return target.__tablename__, None if ident is None else str(ident)


def record(
    session: AsyncSession,
    actor: Principal | None,
    action: str,
    target: Target = None,
    details: dict[str, Any] | None = None,
    *,
    ip: str | None = None,
    actor_label: str | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Add an audit row for ``actor`` doing ``action`` (e.g. ``"user.created"``) to ``target``.

    ``target`` is a model instance (flushed, so it has an id) or a ``(type, id)`` pair.
    With no actor the entry is attributed to the system (CLI, demo loader).
    """
    target_type, target_id = _target_ref(target)
    entry = AuditEntry(
        at=at or utcnow(),
        actor_type=actor.kind if actor else "system",
        actor_id=str(actor.id) if actor else None,
        actor_label=actor_label if actor_label is not None else (actor.label if actor else ""),
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=details or {},
        ip=ip,
    )
    session.add(entry)
    session.info[_RECORDED] = True
    return entry


# In tests, a request to an ``audited`` route that changes rows but records nothing fails:
# every web test that exercises a route checks its declaration too. (Changes made through
# the runtime's own sessions, such as a retry, are not seen; the guard test covers those.)
_WATCH = "audit_watch"
_CHANGED = "audit_changed"
_RECORDED = "audit_recorded"


class UnauditedChange(RuntimeError):
    """A route declared ``audited(...)`` changed data and recorded no entry."""


def watch(session: AsyncSession) -> None:
    """Notice, for ``check_recorded``, whether ``session`` changes rows other than the log's."""
    session.info[_WATCH] = True


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _context: object, _instances: object) -> None:
    if not session.info.get(_WATCH):
        return
    touched = [
        *session.new,
        *session.deleted,
        *(o for o in session.dirty if session.is_modified(o)),
    ]
    if any(not isinstance(obj, AuditEntry) for obj in touched):
        session.info[_CHANGED] = True


@event.listens_for(Session, "do_orm_execute")
def _on_execute(state: ORMExecuteState) -> Result[Any] | None:
    if not state.session.info.get(_WATCH) or not (
        state.is_insert or state.is_update or state.is_delete
    ):
        return None
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) == AuditEntry.__tablename__:
        return None
    # An UPDATE that matched nothing (a stale revision, say) changed nothing; a result
    # without a count (INSERT ... RETURNING through the ORM) counts as a change.
    result = state.invoke_statement()
    if getattr(result, "rowcount", -1) != 0:
        state.session.info[_CHANGED] = True
    return result


async def check_recorded(session: AsyncSession, route: str) -> None:
    """Raise ``UnauditedChange`` when the watched ``session`` changed rows and recorded nothing."""
    await session.flush()
    if session.info.get(_CHANGED) and not session.info.get(_RECORDED):
        raise UnauditedChange(f"{route} changed data but wrote no audit entry (backend/audit.py)")
