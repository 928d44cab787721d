"""Retention: old run history, events and message bodies are pruned in batches.

The worker's periodic job (``Runtime.work``, run by the arq cron sweep and by the
in-process executor alike) calls ``prune`` once per retention interval. Each
batch is its own short transaction, so pruning a backlog never holds a lock
for long, and a crash loses at most the batch in hand.

What is never pruned, whatever its age:

- the steps of a live (active or waiting) journey: its step keys stop a step
  from running twice, and a waiting step's row is completed later; and those
  of a failed journey, which an admin may still retry;
- an event a live journey was woken by (``ctx.wake`` of its next step);
- the body of a message not yet finished (pending, sending or deferred);
- journeys, outbox rows and their statuses: the counts the flow charts and the
  outbox show stay, only the bodies go.

Aggregates kept elsewhere (a rollup table of step or event counts) register a
``Watermark`` for the table they summarise: rows are then pruned only once they
are older than both the configured age and the rollup's watermark, so a chart
never loses a row it has not summed yet.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from runtime.models import (
    LIVE_STATUSES,
    Delivery,
    Event,
    Journey,
    JourneyStatus,
    OutboxMessage,
    Step,
)
from runtime.settings import RuntimeSettings

__all__ = [
    "FINISHED_MESSAGES",
    "KEPT_PAYLOAD_KEYS",
    "PRUNED_MARK",
    "PruneReport",
    "RetentionPolicy",
    "Table",
    "Watermark",
    "prune",
]

log = logging.getLogger(__name__)

Table = Literal["steps", "events", "bodies"]
# A rollup's "summed up to here": rows older than it may go. None: nothing summed yet.
Watermark = Callable[[AsyncSession], Awaitable[datetime | None]]

FINISHED_MESSAGES = ("sent", "suppressed", "dead")
# Journeys whose steps stay: live ones, and failed ones an admin may retry.
STEPS_NEEDED_BY = (*LIVE_STATUSES, JourneyStatus.failed.value)
# A pruned message keeps who it went to and what it was called, for the outbox list.
KEPT_PAYLOAD_KEYS = ("to", "from", "subject", "title", "url")
# Set on a pruned message's payload: the cutoff it was pruned at.
PRUNED_MARK = "pruned_before"


@dataclass(frozen=True)
class RetentionPolicy:
    """How many days each kind of row is kept; 0 keeps it for ever."""

    step_days: int = 180
    event_days: int = 365
    body_days: int = 90
    batch_size: int = 1000

    @classmethod
    def from_settings(cls, settings: RuntimeSettings) -> RetentionPolicy:
        return cls(
            step_days=settings.retention_step_days,
            event_days=settings.retention_event_days,
            body_days=settings.retention_body_days,
            batch_size=settings.retention_batch_size,
        )

    def days(self, table: Table) -> int:
        return {"steps": self.step_days, "events": self.event_days, "bodies": self.body_days}[table]


@dataclass
class PruneReport:
    """Rows pruned per table in one ``prune`` call; ``finished`` is False when time ran out."""

    steps: int = 0
    events: int = 0
    bodies: int = 0
    batches: int = 0
    finished: bool = True
    cutoffs: dict[str, datetime] = field(default_factory=dict)

    def add(self, table: Table, count: int) -> None:
        setattr(self, table, getattr(self, table) + count)
        self.batches += 1

    @property
    def total(self) -> int:
        return self.steps + self.events + self.bodies


async def _cutoff(
    sessions: async_sessionmaker[AsyncSession],
    policy: RetentionPolicy,
    table: Table,
    now: datetime,
    watermarks: Mapping[str, Watermark],
) -> datetime | None:
    """Rows of ``table`` older than this go; None prunes nothing."""
    days = policy.days(table)
    if days <= 0:
        return None
    cutoff = now - timedelta(days=days)
    watermark = watermarks.get(table)
    if watermark is not None:
        async with sessions() as session:
            summed_to = await watermark(session)
        if summed_to is None:
            return None
        cutoff = min(cutoff, summed_to)
    return cutoff


@dataclass(frozen=True)
class Batch:
    """One batch's outcome: how many rows it looked at, the last id, how many it pruned."""

    scanned: int
    last_id: int
    pruned: int


async def _delete_batch(
    session: AsyncSession,
    table: type[Step] | type[Event],
    condition: ColumnElement[bool],
    size: int,
) -> Batch:
    # One statement per batch: the ids come from a subquery, not a list of bound values.
    oldest = select(table.id).where(condition).order_by(table.id).limit(size).scalar_subquery()
    ids = list(await session.scalars(delete(table).where(table.id.in_(oldest)).returning(table.id)))
    return Batch(len(ids), max(ids, default=0), len(ids))


async def _step_batch(session: AsyncSession, cutoff: datetime, after: int, size: int) -> Batch:
    needed = select(Journey.id).where(
        Journey.id == Step.journey_id, Journey.status.in_(STEPS_NEEDED_BY)
    )
    condition = and_(Step.id > after, Step.started_at < cutoff, ~needed.exists())
    return await _delete_batch(session, Step, condition, size)


async def _event_batch(session: AsyncSession, cutoff: datetime, after: int, size: int) -> Batch:
    # ix_journeys_wake_event finds a live journey woken by the event.
    needed = select(Journey.id).where(
        Journey.wake_event_id == Event.id, Journey.status.in_(LIVE_STATUSES)
    )
    condition = and_(Event.id > after, Event.occurred_at < cutoff, ~needed.exists())
    return await _delete_batch(session, Event, condition, size)


async def _body_batch(session: AsyncSession, cutoff: datetime, after: int, size: int) -> Batch:
    rows = (
        await session.execute(
            select(OutboxMessage.id, OutboxMessage.payload)
            .where(
                OutboxMessage.id > after,
                OutboxMessage.created_at < cutoff,
                OutboxMessage.status.in_(FINISHED_MESSAGES),
                OutboxMessage.payload[PRUNED_MARK].as_string().is_(None),
            )
            .order_by(OutboxMessage.id)
            .limit(size)
        )
    ).all()
    if not rows:
        return Batch(0, after, 0)
    stamp = cutoff.isoformat()
    for message_id, payload in rows:
        kept: dict[str, Any] = {k: payload[k] for k in KEPT_PAYLOAD_KEYS if k in payload}
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(payload={**kept, PRUNED_MARK: stamp}, last_error=None)
        )
    ids = [message_id for message_id, _payload in rows]
    # The delivery ledger's detail holds the provider's answer or, in development, the mail.
    await session.execute(update(Delivery).where(Delivery.outbox_id.in_(ids)).values(detail=None))
    return Batch(len(ids), ids[-1], len(ids))


_BATCHES: dict[Table, Callable[[AsyncSession, datetime, int, int], Awaitable[Batch]]] = {
    "steps": _step_batch,
    "events": _event_batch,
    "bodies": _body_batch,
}


async def prune(
    sessions: async_sessionmaker[AsyncSession],
    policy: RetentionPolicy,
    now: datetime,
    *,
    watermarks: Mapping[str, Watermark] | None = None,
    budget_seconds: float | None = None,
) -> PruneReport:
    """Prune every table older than its cutoff, a batch per transaction, oldest first.

    Stops early (``finished=False``) once ``budget_seconds`` are spent; the next
    call starts over from the oldest rows, which are then the ones left.
    """
    report = PruneReport()
    deadline = time.monotonic() + budget_seconds if budget_seconds else None
    for table, batch in _BATCHES.items():
        cutoff = await _cutoff(sessions, policy, table, now, watermarks or {})
        if cutoff is None:
            continue
        report.cutoffs[table] = cutoff
        after, total = 0, 0
        while True:
            async with sessions() as session, session.begin():
                done = await batch(session, cutoff, after, policy.batch_size)
            after = max(after, done.last_id)
            if done.pruned:
                total += done.pruned
                report.add(table, done.pruned)
                log.info(
                    "retention: %s older than %s: %d pruned so far", table, cutoff.date(), total
                )
            if done.scanned < policy.batch_size:
                break
            if deadline is not None and time.monotonic() > deadline:
                report.finished = False
                log.info("retention: time is up; the rest goes at the next sweep")
                return report
    return report
    return report
