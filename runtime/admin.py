"""Admin actions on the runtime: retry or cancel a journey, retry a dead message,
and set-based exits (customers who left a flow's audience).

Each runs in the caller's transaction. Every change that takes a journey out
of a worker's hands also clears its lease, so a worker stepping it right now
drops its stale result instead of overwriting the admin's decision.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from runtime.claims import LIVE_SQL, drop_leases
from runtime.enroll import entry_key
from runtime.graph import FlowSettings
from runtime.models import FlowVersion, JourneyStatus, OutboxStatus
from runtime.sql import CONTACTS, JOURNEYS, OUTBOX, close_open_steps

__all__ = [
    "AdminError",
    "cancel_journey",
    "exit_left_audience",
    "retry_journey",
    "retry_message",
]


class AdminError(RuntimeError):
    """The action does not apply (wrong status, conflicting journey...)."""


_CANCELLABLE = (JourneyStatus.active.value, JourneyStatus.waiting.value, JourneyStatus.failed.value)
_ENDED = {
    "due_at": None,
    "wait_event_type": None,
    "wait_match": None,
    "entry_key": None,
    "lease_owner": None,
    "lease_until": None,
}


async def _journey(session: AsyncSession, journey_id: int) -> Any:
    row = (
        await session.execute(
            select(
                JOURNEYS.c.id,
                JOURNEYS.c.status,
                JOURNEYS.c.flow_id,
                JOURNEYS.c.contact_id,
                JOURNEYS.c.visitor_id,
            )
            .where(JOURNEYS.c.id == journey_id)
            .with_for_update()
        )
    ).one_or_none()
    if row is None:
        raise AdminError(f"Journey {journey_id} does not exist.")
    return row


async def retry_journey(session: AsyncSession, journey_id: int, *, now: datetime) -> None:
    """Run a failed journey's failing node again, now, with a fresh attempt budget.

    Refused when the customer has meanwhile entered the flow again and the
    re-entry policy allows only one live journey at a time.
    """
    row = await _journey(session, journey_id)
    if row.status != JourneyStatus.failed.value:
        raise AdminError("Only a failed journey can be retried.")
    key = entry_key(row.flow_id, row.contact_id, row.visitor_id)
    taken = await session.scalar(select(JOURNEYS.c.id).where(JOURNEYS.c.entry_key == key))
    if taken is not None:
        raise AdminError(
            f"This customer is in the flow again (journey {taken}); cancel that one first."
        )
    await session.execute(
        update(JOURNEYS)
        .where(JOURNEYS.c.id == journey_id)
        .values(
            status=JourneyStatus.active.value,
            attempts=0,
            due_at=now,
            ended_at=None,
            exit_reason=None,
            entry_key=key,
            lease_owner=None,
            lease_until=None,
            updated_at=now,
        )
    )
    await drop_leases(session, [journey_id])


async def cancel_journey(session: AsyncSession, journey_id: int, *, now: datetime) -> None:
    """Stop a live or failed journey for good."""
    row = await _journey(session, journey_id)
    if row.status not in _CANCELLABLE:
        raise AdminError("This journey has already ended.")
    await close_open_steps(
        session, select(JOURNEYS.c.id).where(JOURNEYS.c.id == journey_id), "cancelled", now
    )
    await session.execute(
        update(JOURNEYS)
        .where(JOURNEYS.c.id == journey_id)
        .values(
            status=JourneyStatus.cancelled.value,
            exit_reason="cancelled by an admin",
            ended_at=now,
            updated_at=now,
            **_ENDED,
        )
    )
    await drop_leases(session, [journey_id])


async def retry_message(session: AsyncSession, message_id: int, *, now: datetime) -> None:
    """Send a dead-lettered message again, with a fresh attempt budget."""
    result = await session.execute(
        update(OUTBOX)
        .where(OUTBOX.c.id == message_id, OUTBOX.c.status == OutboxStatus.dead.value)
        .values(
            status=OutboxStatus.pending.value,
            attempts=0,
            next_attempt_at=now,
            status_reason=None,
            lease_owner=None,
            lease_until=None,
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise AdminError("Only a message in the dead-letter state can be retried.")


async def exit_left_audience(
    session: AsyncSession,
    flow_id: int,
    in_audience: ColumnElement[bool],
    *,
    now: datetime,
) -> int:
    """Exit live journeys of contacts no longer matching ``in_audience`` (over ``contacts``).

    Applies to journeys whose version lists "left_audience" in its exit rules.
    The caller (a periodic job with the rule compiler) passes the condition.
    """
    versions = await session.execute(
        select(FlowVersion.id, FlowVersion.graph).where(FlowVersion.flow_id == flow_id)
    )
    applying = [
        vid
        for vid, graph in versions
        if "left_audience" in FlowSettings.model_validate(graph.get("settings") or {}).exit_on
    ]
    if not applying:
        return 0
    leaving = select(JOURNEYS.c.id).where(
        JOURNEYS.c.flow_version_id.in_(applying),
        LIVE_SQL,
        JOURNEYS.c.contact_id.in_(select(CONTACTS.c.id).where(~in_audience)),
    )
    await close_open_steps(session, leaving, "left_audience", now)
    result = await session.execute(
        update(JOURNEYS)
        .where(JOURNEYS.c.id.in_(leaving.scalar_subquery()))
        .values(
            status=JourneyStatus.exited.value,
            exit_reason="left_audience",
            ended_at=now,
            updated_at=now,
            **_ENDED,
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
