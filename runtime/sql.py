"""Small SQL helpers shared by the runtime: dialect-specific INSERTs and table handles.

The hot path uses Core statements on these tables, never the ORM unit of
work: rows are plain dicts, written in batches.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, any_, literal, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from runtime.models import (
    Contact,
    Event,
    Flow,
    Journey,
    JourneyConversion,
    JourneyLease,
    OutboxMessage,
    Step,
    StepStatus,
    Task,
    Visitor,
)

JOURNEYS: Table = Journey.__table__  # type: ignore[assignment]
STEPS: Table = Step.__table__  # type: ignore[assignment]
OUTBOX: Table = OutboxMessage.__table__  # type: ignore[assignment]
EVENTS: Table = Event.__table__  # type: ignore[assignment]
CONTACTS: Table = Contact.__table__  # type: ignore[assignment]
VISITORS: Table = Visitor.__table__  # type: ignore[assignment]
FLOWS: Table = Flow.__table__  # type: ignore[assignment]
TASKS: Table = Task.__table__  # type: ignore[assignment]
CONVERSIONS: Table = JourneyConversion.__table__  # type: ignore[assignment]
LEASES: Table = JourneyLease.__table__  # type: ignore[assignment]


def dialect_name(session: AsyncSession) -> str:
    bind = session.get_bind()
    return bind.dialect.name


def among(session: AsyncSession, column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """``column IN (values)``; on PostgreSQL ``= ANY(array)``, so the statement text (and
    its prepared plan) stays the same whatever the number of values."""
    items = list(values)
    if dialect_name(session) == "postgresql":
        return column == any_(literal(items, postgresql.ARRAY(column.type)))  # type: ignore[no-any-return]
    return column.in_(items)  # type: ignore[no-any-return]


def upsert_insert(session: AsyncSession, table: Table) -> Any:
    """``INSERT`` with ``ON CONFLICT`` support for the session's database.

    Both dialects' constructs offer ``on_conflict_do_nothing``/``do_update``
    with the same arguments; the return type differs, hence ``Any``.
    """
    if dialect_name(session) == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


async def close_open_steps(
    session: AsyncSession, journeys: Select[Any], reason: str, now: datetime
) -> None:
    """Mark waits in progress as ended in the run history of ``journeys`` (a select of ids).

    Called before a journey is taken off its wait from outside (archive,
    cancel, goal reached, left the audience), so no step stays "waiting" forever.
    """
    await session.execute(
        update(STEPS)
        .where(STEPS.c.status == StepStatus.waiting.value, STEPS.c.journey_id.in_(journeys))
        .values(status=StepStatus.ended.value, finished_at=now, output={"interrupted": reason})
    )
