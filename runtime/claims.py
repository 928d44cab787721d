"""Claims: a worker takes a batch of due rows by writing a lease on them.

PostgreSQL selects with ``FOR UPDATE SKIP LOCKED`` so concurrent workers
split the due rows between them without waiting; SQLite has one writer at a
time, so a plain ``UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING`` is
already atomic. A claim pushes the row's due time to the end of the lease:
a crashed worker's rows simply become due again when the lease runs out.

Status filters are literal SQL (not bound parameters) so PostgreSQL can
prove they imply the partial indexes' predicates even with generic plans.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from runtime.models import FlowStatus, OutboxStatus
from runtime.sql import FLOWS, JOURNEYS, OUTBOX, dialect_name

__all__ = [
    "LIVE_SQL",
    "claim_journeys",
    "claim_outbox",
    "release_stale_outbox",
    "renew_outbox",
]

LIVE_SQL = text("journeys.status IN ('active', 'waiting')")
_OUTBOX_DUE_SQL = text("outbox_messages.status IN ('pending', 'deferred')")
_OUTBOX_SENDING_SQL = text("outbox_messages.status = 'sending'")

CLAIMED_JOURNEY_COLUMNS = (
    JOURNEYS.c.id,
    JOURNEYS.c.flow_id,
    JOURNEYS.c.flow_version_id,
    JOURNEYS.c.contact_id,
    JOURNEYS.c.visitor_id,
    JOURNEYS.c.status,
    JOURNEYS.c.node_id,
    JOURNEYS.c.visits,
    JOURNEYS.c.data,
    JOURNEYS.c.wait_event_type,
    JOURNEYS.c.wait_match,
    JOURNEYS.c.waiting_since,
    JOURNEYS.c.attempts,
    JOURNEYS.c.wake_event_id,
    JOURNEYS.c.entered_at,
)


async def claim_journeys(
    session: AsyncSession, *, owner: str, now: datetime, limit: int, lease: timedelta
) -> Sequence[Row[Any]]:
    """Lease up to ``limit`` due journeys of flows that are not paused, oldest due first."""
    due = (
        select(JOURNEYS.c.id)
        .where(
            LIVE_SQL,
            JOURNEYS.c.due_at <= now,
            JOURNEYS.c.flow_id.not_in(
                select(FLOWS.c.id).where(FLOWS.c.status == FlowStatus.paused.value)
            ),
        )
        .order_by(JOURNEYS.c.due_at)
        .limit(limit)
    )
    if dialect_name(session) == "postgresql":
        due = due.with_for_update(skip_locked=True)
    until = now + lease
    result = await session.execute(
        update(JOURNEYS)
        .where(JOURNEYS.c.id.in_(due.scalar_subquery()))
        .values(lease_owner=owner, lease_until=until, due_at=until)
        .returning(*CLAIMED_JOURNEY_COLUMNS)
    )
    return result.all()


async def claim_outbox(
    session: AsyncSession,
    *,
    owner: str,
    now: datetime,
    limit: int,
    lease: timedelta,
    channel: str | None = None,
    other_than: Sequence[str] = (),
) -> Sequence[Row[Any]]:
    """Lease up to ``limit`` messages due for a delivery attempt; counts the attempt.

    ``channel`` takes only that channel's messages; ``other_than`` only those of
    channels not in it.
    """
    due = (
        select(OUTBOX.c.id)
        .where(_OUTBOX_DUE_SQL, OUTBOX.c.next_attempt_at <= now)
        .order_by(OUTBOX.c.next_attempt_at)
        .limit(limit)
    )
    if channel is not None:
        due = due.where(OUTBOX.c.channel == channel)
    if other_than:
        due = due.where(OUTBOX.c.channel.not_in(other_than))
    if dialect_name(session) == "postgresql":
        due = due.with_for_update(skip_locked=True)
    result = await session.execute(
        update(OUTBOX)
        .where(OUTBOX.c.id.in_(due.scalar_subquery()))
        .values(
            status=OutboxStatus.sending.value,
            lease_owner=owner,
            lease_until=now + lease,
            attempts=OUTBOX.c.attempts + 1,
        )
        .returning(
            OUTBOX.c.id,
            OUTBOX.c.idempotency_key,
            OUTBOX.c.channel,
            OUTBOX.c.category,
            OUTBOX.c.journey_id,
            OUTBOX.c.node_id,
            OUTBOX.c.contact_id,
            OUTBOX.c.payload,
            OUTBOX.c.attempts,
        )
    )
    return result.all()


async def renew_outbox(
    session: AsyncSession, *, owner: str, ids: Sequence[int], now: datetime, lease: timedelta
) -> set[int]:
    """Extend ``owner``'s lease on the messages it still holds among ``ids``; returns those."""
    result = await session.execute(
        update(OUTBOX)
        .where(OUTBOX.c.id.in_(ids), OUTBOX.c.lease_owner == owner, _OUTBOX_SENDING_SQL)
        .values(lease_until=now + lease)
        .returning(OUTBOX.c.id)
    )
    return set(result.scalars())


async def release_stale_outbox(session: AsyncSession, *, now: datetime) -> int:
    """Put back messages whose deliverer died mid-send (their lease ran out)."""
    result = await session.execute(
        update(OUTBOX)
        .where(_OUTBOX_SENDING_SQL, OUTBOX.c.lease_until < now)
        .values(status=OutboxStatus.pending.value, lease_owner=None, next_attempt_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
