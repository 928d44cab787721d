"""Folding new steps, messages and events into the results rollup (``runtime.models.results``).

The step hot path writes nothing extra: the worker's periodic job folds what is
new, in batches, off the hot path. Each batch is one transaction that adds its
counts to ``flow_results`` and marks its rows as counted, so a fold that crashes
counts nothing and the next one counts everything once:

- steps and outbox messages carry a ``counted`` marker, found through partial
  indexes of the rows still to count. A step that was waiting when it was first
  counted ("reached") comes back into the index once it finishes, and is then
  counted again for the way it left;
- events are never updated, so a counted event gets a row in ``results_marks``
  instead. Only marks above the floor matter; the floor trails the newest event
  by ``EVENTS_SETTLE``, longer than any transaction stays open, so an event
  committed late (its id taken before a newer one's commit) is still counted.

Concurrent folds take disjoint rows (``SKIP LOCKED`` on PostgreSQL; SQLite has one writer).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, bindparam, exists, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from runtime.models import (
    FlowResult,
    Metric,
    OutboxStatus,
    ResultsFloor,
    ResultsMark,
    StepStatus,
)
from runtime.sql import EVENTS, JOURNEYS, OUTBOX, STEPS, among, dialect_name, upsert_insert

if TYPE_CHECKING:
    from runtime.engine import Runtime

__all__ = ["ENGAGEMENT", "EVENTS_SETTLE", "FoldReport", "fold_results"]

RESULTS: Table = FlowResult.__table__  # type: ignore[assignment]
MARKS: Table = ResultsMark.__table__  # type: ignore[assignment]
FLOORS: Table = ResultsFloor.__table__  # type: ignore[assignment]

# Far longer than a request stays open; every fold rechecks the events this far back.
EVENTS_SETTLE = timedelta(minutes=10)
# Events that say what became of a message, and the counter each one adds to.
ENGAGEMENT: dict[str, Metric] = {
    "email.opened": Metric.opened,
    "email.clicked": Metric.clicked,
    "email.bounced": Metric.bounced,
    "email.unsubscribed": Metric.unsubscribed,
    "sms.unsubscribed": Metric.unsubscribed,
    "sms.delivered": Metric.delivered,
}
# ``counted`` on outbox messages: the outcome (sent or withheld), a click, or both.
_OUTCOME, _CLICK, _BOTH = 1, 2, 3
# ``counted`` on steps: reached only (it was waiting or retrying), or everything.
_REACHED, _SETTLED = 1, 2

# The partial indexes' predicates, literally (bind parameters would hide from the
# PostgreSQL planner that a query asks only for rows the index holds).
# Each in parentheses: text() goes into the WHERE clause as it is written.
_STEPS_TO_COUNT = text(
    "(steps.counted IS NULL OR (steps.counted = 1 AND steps.status <> 'waiting'))"
)
_MESSAGES_TO_COUNT = text(
    "((outbox_messages.counted IS NULL OR outbox_messages.counted = 2) "
    "AND outbox_messages.status IN ('sent', 'suppressed', 'dead'))"
)
_ENGAGEMENT_EVENTS = text(
    "(events.type IN ('email.opened', 'email.clicked', 'email.bounced', 'email.unsubscribed', "
    "'sms.unsubscribed', 'sms.delivered'))"
)
# A key of ``flow_results`` plus the flow it belongs to.
_Key = tuple[int, int, str, str, str, date]


@dataclass
class FoldReport:
    steps: int = 0
    messages: int = 0
    events: int = 0

    @property
    def total(self) -> int:
        return self.steps + self.messages + self.events


async def fold_results(rt: Runtime, *, batch: int = 5000, max_batches: int = 20) -> FoldReport:
    """Count what is new since the last fold; at most ``max_batches`` per kind of row,
    so a large backlog (after an upgrade) is worked off over a few sweeps."""
    report = FoldReport()
    now = rt.clock.now()
    max_attempts = rt.settings.max_step_attempts
    for kind in ("steps", "messages", "events"):
        after = 0
        for _ in range(max_batches):
            async with rt.sessions() as session, session.begin():
                await _take_write_lock(session)
                if kind == "steps":
                    seen, last = await _fold_steps(session, after, batch, max_attempts)
                elif kind == "messages":
                    seen, last = await _fold_messages(session, after, batch)
                else:
                    seen, last = await _fold_events(session, after, batch, now)
            setattr(report, kind, getattr(report, kind) + seen)
            if last is None:
                break
            after = last
    return report


async def _take_write_lock(session: AsyncSession) -> None:
    # SQLite: write first, so the rows read next cannot change before the marks are set.
    if dialect_name(session) == "sqlite":
        await session.execute(update(FLOORS).where(FLOORS.c.name == "").values(name=""))


def _locked(session: AsyncSession, query: Any, table: Table) -> Any:
    if dialect_name(session) == "postgresql":
        return query.with_for_update(of=table, skip_locked=True)
    return query


async def _fold_steps(
    session: AsyncSession, after: int, batch: int, max_attempts: int
) -> tuple[int, int | None]:
    s = STEPS.c
    query = (
        select(
            s.id,
            s.node_id,
            s.port,
            s.status,
            s.attempts,
            s.counted,
            s.started_at,
            JOURNEYS.c.flow_id,
            JOURNEYS.c.flow_version_id,
        )
        .join(JOURNEYS, JOURNEYS.c.id == s.journey_id)
        .where(s.id > bindparam("after"), _STEPS_TO_COUNT)
        .order_by(s.id)
        .limit(bindparam("batch"))
    )
    params = {"after": after, "batch": batch}
    rows = (await session.execute(_locked(session, query, STEPS), params)).all()
    counts: Counter[_Key] = Counter()
    marks: dict[int, list[int]] = {_REACHED: [], _SETTLED: []}
    for row in rows:
        where = (row.flow_id, row.flow_version_id, row.node_id)
        day = row.started_at.date()
        if row.counted is None:
            counts[(*where, Metric.reached.value, "", day)] += 1
        retrying = row.status == StepStatus.error.value and row.attempts < max_attempts
        if row.status == StepStatus.waiting.value or retrying:
            if row.counted is None:
                marks[_REACHED].append(row.id)
            continue
        if row.status == StepStatus.error.value:
            counts[(*where, Metric.failed.value, "", day)] += 1
        else:
            counts[(*where, Metric.left.value, row.port or "", day)] += 1
        marks[_SETTLED].append(row.id)
    await _add(session, counts)
    for value, ids in marks.items():
        if ids:
            await session.execute(
                update(STEPS).where(among(session, s.id, ids)).values(counted=value)
            )
    return len(rows), (rows[-1].id if len(rows) == batch else None)


async def _fold_messages(session: AsyncSession, after: int, batch: int) -> tuple[int, int | None]:
    o = OUTBOX.c
    query = (
        select(
            o.id,
            o.node_id,
            o.channel,
            o.status,
            o.counted,
            o.created_at,
            JOURNEYS.c.flow_id,
            JOURNEYS.c.flow_version_id,
        )
        .outerjoin(JOURNEYS, JOURNEYS.c.id == o.journey_id)
        .where(o.id > after, _MESSAGES_TO_COUNT)
        .order_by(o.id)
        .limit(batch)
    )
    rows = (await session.execute(_locked(session, query, OUTBOX))).all()
    counts: Counter[_Key] = Counter()
    for row in rows:
        if row.flow_version_id is None or row.node_id is None:
            continue  # not sent by a flow (a test send, an admin's message)
        where = (row.flow_id, row.flow_version_id, row.node_id)
        day = row.created_at.date()
        if row.status == OutboxStatus.sent.value:
            counts[(*where, Metric.sent.value, "", day)] += 1
            if row.channel == "email":
                # Email has no delivery receipt: sent counts as delivered until it bounces.
                counts[(*where, Metric.delivered.value, "", day)] += 1
        else:
            counts[(*where, Metric.withheld.value, "", day)] += 1
    await _add(session, counts)
    for before, value in ((None, _OUTCOME), (_CLICK, _BOTH)):
        ids = [row.id for row in rows if row.counted == before]
        if ids:
            await session.execute(
                update(OUTBOX).where(among(session, o.id, ids)).values(counted=value)
            )
    return len(rows), (rows[-1].id if len(rows) == batch else None)


async def _fold_events(
    session: AsyncSession, after: int, batch: int, now: datetime
) -> tuple[int, int | None]:
    floor = await _events_floor(session, now) if after == 0 else after
    e = EVENTS.c
    query = (
        select(e.id, e.type, e.contact_id, e.properties, e.occurred_at)
        .where(
            e.id > max(floor, after),
            _ENGAGEMENT_EVENTS,
            ~exists().where(MARKS.c.event_id == e.id),
        )
        .order_by(e.id)
        .limit(batch)
    )
    rows = (await session.execute(query)).all()
    if not rows:
        return 0, None
    # The mark claims the event: a concurrent fold that got there first wins it.
    claim = upsert_insert(session, MARKS).on_conflict_do_nothing(index_elements=[MARKS.c.event_id])
    marked = await session.scalars(
        claim.returning(MARKS.c.event_id), [{"event_id": row.id} for row in rows]
    )
    claimed = set(marked.all())
    mine = [row for row in rows if row.id in claimed]
    named = await _messages(session, {_named(row) for row in mine} - {None})
    clicked = await _first_clicks(
        session, {_named(row) for row in mine if row.type == "email.clicked"} - {None}
    )
    counts: Counter[_Key] = Counter()
    for row in mine:
        message_id = _named(row)
        message = named.get(message_id) if message_id is not None else await _bounced(session, row)
        if message is None:
            continue
        metric = ENGAGEMENT[row.type]
        if metric is Metric.clicked:
            if message.id not in clicked:
                continue  # this message's click is already counted
            clicked.discard(message.id)
        where = (message.flow_id, message.flow_version_id, message.node_id)
        day = message.created_at.date()
        counts[(*where, metric.value, "", day)] += 1
        if metric is Metric.bounced:
            counts[(*where, Metric.delivered.value, "", day)] -= 1
    await _add(session, counts)
    return len(rows), (rows[-1].id if len(rows) == batch else None)


async def _events_floor(session: AsyncSession, now: datetime) -> int:
    """Move the floor up to the id that was newest ``EVENTS_SETTLE`` ago; drop marks below it."""
    row = (await session.execute(select(FLOORS).where(FLOORS.c.name == "events"))).first()
    newest = await session.scalar(select(func.max(EVENTS.c.id))) or 0
    if row is None:
        await session.execute(
            upsert_insert(session, FLOORS)
            .values(name="events", floor_id=0, candidate_id=newest, candidate_at=now)
            .on_conflict_do_nothing(index_elements=[FLOORS.c.name])
        )
        return 0
    if row.candidate_at is None or row.candidate_at > now - EVENTS_SETTLE:
        return int(row.floor_id)
    await session.execute(
        update(FLOORS)
        .where(FLOORS.c.name == "events")
        .values(floor_id=row.candidate_id, candidate_id=newest, candidate_at=now)
    )
    await session.execute(MARKS.delete().where(MARKS.c.event_id <= row.candidate_id))
    return int(row.candidate_id)


def _named(event: Any) -> int | None:
    message_id = (event.properties or {}).get("message_id")
    return int(message_id) if message_id is not None and str(message_id).isdigit() else None


def _flow_messages() -> Any:
    o = OUTBOX.c
    return (
        select(o.id, o.node_id, o.created_at, JOURNEYS.c.flow_id, JOURNEYS.c.flow_version_id)
        .join(JOURNEYS, JOURNEYS.c.id == o.journey_id)
        .where(o.node_id.is_not(None))
    )


async def _messages(session: AsyncSession, ids: set[int | None]) -> dict[int, Any]:
    """The flow messages the events name, in one query."""
    if not ids:
        return {}
    rows = await session.execute(_flow_messages().where(among(session, OUTBOX.c.id, ids)))
    return {row.id: row for row in rows}


async def _bounced(session: AsyncSession, event: Any) -> Any:
    """A bounce report names only the address: the contact's last email sent before it."""
    if event.type != "email.bounced" or event.contact_id is None:
        return None
    o = OUTBOX.c
    query = (
        _flow_messages()
        .where(
            o.contact_id == event.contact_id,
            o.channel == "email",
            o.status == OutboxStatus.sent.value,
            o.created_at <= event.occurred_at,
        )
        .order_by(o.created_at.desc(), o.id.desc())
        .limit(1)
    )
    return (await session.execute(query)).first()


async def _first_clicks(session: AsyncSession, ids: set[int | None]) -> set[int]:
    """Of these messages, those whose first click this is (marked now): clicks count once
    per message (the events are once per link), so click rates stay rates."""
    if not ids:
        return set()
    o = OUTBOX.c
    marked = await session.execute(
        update(OUTBOX)
        .where(among(session, o.id, ids), or_(o.counted.is_(None), o.counted == _OUTCOME))
        .values(counted=func.coalesce(o.counted, 0) + _CLICK)
        .returning(o.id)
    )
    return {row[0] for row in marked}


async def _add(session: AsyncSession, counts: Counter[_Key]) -> None:
    """Add the counts to the rollup; keys sorted so concurrent folds lock rows in one order."""
    rows = [
        {
            "flow_id": flow_id,
            "flow_version_id": version_id,
            "node_id": node_id,
            "metric": metric,
            "port": port,
            "day": day,
            "count": count,
        }
        for (flow_id, version_id, node_id, metric, port, day), count in sorted(counts.items())
        if count
    ]
    if not rows:
        return
    stmt = upsert_insert(session, RESULTS)
    stmt = stmt.on_conflict_do_update(
        index_elements=[
            RESULTS.c.flow_version_id,
            RESULTS.c.node_id,
            RESULTS.c.metric,
            RESULTS.c.port,
            RESULTS.c.day,
        ],
        set_={"count": RESULTS.c.count + stmt.excluded["count"]},
    )
    await session.execute(stmt, rows)


# Retention's watermarks (``Runtime.retention_watermarks``): rows older than these are
# in the rollup, so pruning them loses no count. Nothing pending holds nothing back.
_NOTHING_PENDING = datetime.max.replace(tzinfo=UTC)


async def steps_counted_before(session: AsyncSession) -> datetime | None:
    """Every step that started before this moment is counted in full."""
    oldest = await session.scalar(select(func.min(STEPS.c.started_at)).where(_STEPS_TO_COUNT))
    return oldest if oldest is not None else _NOTHING_PENDING


async def events_counted_before(session: AsyncSession) -> datetime | None:
    """Every engagement event that occurred before this moment is counted; None before
    the first fold, when nothing is known to be counted."""
    floor = await session.scalar(select(FLOORS.c.floor_id).where(FLOORS.c.name == "events"))
    if floor is None:
        return None
    oldest = await session.scalar(
        select(func.min(EVENTS.c.occurred_at)).where(EVENTS.c.id > floor, _ENGAGEMENT_EVENTS)
    )
    return oldest if oldest is not None else _NOTHING_PENDING
