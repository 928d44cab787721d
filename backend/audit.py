"""The audit log: every admin action (and every sign-in attempt) leaves a row.

``record`` only adds the row to the caller's session, so the entry commits or
rolls back together with the change it describes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backend.auth.principal import Principal
from backend.models import AuditEntry, Base, utcnow

Target = Base | tuple[str, object] | None


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
    return entry
