"""Claims: a worker takes a batch of due rows by writing a lease on them.

Journeys: the lease is a row in the narrow ``journey_leases`` table, never a
write to the journey itself, so one claim costs one journey write: the walk's
result (issue 15). Writing the lease on the journey, as before, meant two
updates per claim, and since the claim also pushed the indexed ``due_at``
PostgreSQL could not make either a heap-only update: every index of
``journeys`` got a new entry twice per claim.

The protocol, and why each fault stays covered:

- *Claim*: one ``INSERT INTO journey_leases SELECT`` the oldest due, live
  journeys of unpaused flows that have no live lease, ``ON CONFLICT`` replacing
  only an expired lease, ``RETURNING`` what it took. The lease row, not the
  select, decides who holds a journey: two claims that picked the same journey
  both try to write its lease row, the second waits for the first to commit
  and then, finding a live lease, takes nothing. On PostgreSQL the select also
  locks the journeys ``FOR NO KEY UPDATE SKIP LOCKED`` for the claim's short
  transaction, so concurrent workers pick different rows instead of queueing
  on the same lease rows (the lock is not a new row version; and ``NO KEY``
  does not block step inserts that reference the journey). SQLite has one
  writer: the statement is atomic as it is. On PostgreSQL the worker's claim
  (``claim_with_customers``) also returns each journey's customer and wake
  event, and runs outside a transaction: one round trip.
- *Walk*: node code runs with no transaction open (on SQLite the connection
  is the process's single writer lane), however long a webhook takes. The
  journey's ``due_at`` stays in the past meanwhile; the lease hides it.
- *Worker dies*: its lease rows stay until ``until``; then the journeys are
  claimable again (the claim replaces the expired lease) and nothing else
  needs cleaning up. A slow worker is the same case: past its lease another
  worker may take the journeys over.
- *Write* (``runtime.journal``): in one transaction, lock the walked journeys
  (PostgreSQL; SQLite's write lock covers it) that are still live, then delete
  this claim's own lease rows among them; only the journeys whose lease row
  was still there, with this claim's owner, get their result written, in one
  UPDATE each. A worker whose lease ran out and was replaced, or that lost the
  journey to an admin or an event, writes nothing for it. On PostgreSQL the
  lock, the lease delete and the history rows are one statement; the rows it
  locks or deletes are re-checked at their latest version, so a take-over
  committed after its snapshot still counts.
- *Take-overs* (an event ending a wait, a goal move, an admin cancel or
  retry) change the journey row and then delete its lease row in the same
  transaction: the same order as the claim and the write (journey row, then
  lease row), so they can wait on each other but not deadlock. Ending a
  journey by other means (exit rules, archive, erasure, a profile merge)
  needs no lease delete: the write only touches live journeys. Moving a
  journey to another version skips journeys with a live lease
  (``runtime.moves``).
- *Paused flows*: the claim skips their journeys, which stay due.

Outbox claims still write their lease on the message row: a message is
claimed once or twice in its life, not once per step.

Status filters are literal SQL (not bound parameters) so PostgreSQL can
prove they imply the partial indexes' predicates even with generic plans.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    String,
    and_,
    delete,
    exists,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from runtime.models import FlowStatus, OutboxStatus, UTCDateTime
from runtime.sql import (
    CONTACTS,
    EVENTS,
    FLOWS,
    JOURNEYS,
    LEASES,
    OUTBOX,
    VISITORS,
    among,
    dialect_name,
)

__all__ = [
    "LIVE_SQL",
    "OUTBOX_CLAIMED",
    "OUTBOX_DUE_SQL",
    "claim_journeys",
    "claim_outbox",
    "claim_with_customers",
    "drop_leases",
    "live_lease",
    "release_stale_outbox",
    "renew_outbox",
]

LIVE_SQL = text("journeys.status IN ('active', 'waiting')")
OUTBOX_DUE_SQL = text("outbox_messages.status IN ('pending', 'deferred')")
# What a delivery claim returns of each message it leased (every claim statement).
OUTBOX_CLAIMED = (
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
_OUTBOX_SENDING_SQL = text("outbox_messages.status = 'sending'")

# What ``claim_with_customers`` reads beside each journey: its customer and its wake-up event.
CLAIMED_CUSTOMER = (
    CONTACTS.c.id.label("c_id"),
    CONTACTS.c.email.label("c_email"),
    CONTACTS.c.phone.label("c_phone"),
    CONTACTS.c.first_name.label("c_first_name"),
    CONTACTS.c.last_name.label("c_last_name"),
    CONTACTS.c.attributes.label("c_attributes"),
    CONTACTS.c.tags.label("c_tags"),
    CONTACTS.c.lifecycle_stage.label("c_lifecycle_stage"),
    CONTACTS.c.timezone.label("c_timezone"),
    CONTACTS.c.consent.label("c_consent"),
    CONTACTS.c.owner_id.label("c_owner_id"),
    VISITORS.c.id.label("v_id"),
    VISITORS.c.traits.label("v_traits"),
)
CLAIMED_WAKE = (
    EVENTS.c.id.label("e_id"),
    EVENTS.c.type.label("e_type"),
    EVENTS.c.occurred_at.label("e_occurred_at"),
    EVENTS.c.properties.label("e_properties"),
    EVENTS.c.source.label("e_source"),
)

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


def live_lease(now: datetime) -> ColumnElement[bool]:
    """The journey (in the enclosing query) has a claim that has not run out."""
    return exists().where(LEASES.c.journey_id == JOURNEYS.c.id, LEASES.c.until > now)


def _take(owner: str, now: datetime, limit: int, lease: timedelta, *, postgres: bool) -> Any:
    """The claim: ``INSERT INTO journey_leases SELECT`` the due journeys ``RETURNING`` their ids."""
    due = (
        select(
            JOURNEYS.c.id,
            literal(owner, String()),
            literal(now + lease, UTCDateTime()),
        )
        .where(
            LIVE_SQL,
            JOURNEYS.c.due_at <= now,
            JOURNEYS.c.flow_id.not_in(
                select(FLOWS.c.id).where(FLOWS.c.status == FlowStatus.paused.value)
            ),
            ~live_lease(now),
        )
        .order_by(JOURNEYS.c.due_at)
        .limit(limit)
    )
    if postgres:
        due = due.with_for_update(skip_locked=True, key_share=True, of=JOURNEYS)
    insert = postgresql.insert(LEASES) if postgres else sqlite.insert(LEASES)
    take = insert.from_select(["journey_id", "owner", "until"], due)
    return take.on_conflict_do_update(
        index_elements=[LEASES.c.journey_id],
        set_={"owner": take.excluded.owner, "until": take.excluded.until},
        where=LEASES.c.until <= now,
    ).returning(LEASES.c.journey_id)


async def claim_journeys(
    session: AsyncSession, *, owner: str, now: datetime, limit: int, lease: timedelta
) -> Sequence[Any]:
    """Lease up to ``limit`` due journeys of flows that are not paused, oldest due first."""
    postgres = dialect_name(session) == "postgresql"
    take = _take(owner, now, limit, lease, postgres=postgres)
    if postgres:
        # One statement: the journeys come from the same snapshot as the due select.
        taken = take.cte("taken")
        claimed = select(*CLAIMED_JOURNEY_COLUMNS).where(
            JOURNEYS.c.id.in_(select(taken.c.journey_id))
        )
        return (await session.execute(claimed)).all()
    ids = list((await session.execute(take)).scalars())
    if not ids:
        return []
    claimed = select(*CLAIMED_JOURNEY_COLUMNS).where(among(session, JOURNEYS.c.id, ids))
    return (await session.execute(claimed)).all()


async def claim_with_customers(
    conn: AsyncConnection, *, owner: str, now: datetime, limit: int, lease: timedelta
) -> Sequence[Any]:
    """PostgreSQL: ``claim_journeys`` and what the walks start from, in one statement.

    Each claimed journey comes with its customer's profile columns (``CLAIMED_CUSTOMER``:
    the contact's, or the visitor's traits) and the event that woke it (``CLAIMED_WAKE``),
    all read in the claim's snapshot. One statement is atomic on its own, so the caller
    runs it outside a transaction (no ``BEGIN``/``COMMIT`` round trips): the row locks
    that steer concurrent claims apart last as long as the statement.
    """
    taken = _take(owner, now, limit, lease, postgres=True).cte("taken")
    joined = (
        JOURNEYS.outerjoin(CONTACTS, CONTACTS.c.id == JOURNEYS.c.contact_id)
        .outerjoin(
            VISITORS, and_(JOURNEYS.c.contact_id.is_(None), VISITORS.c.id == JOURNEYS.c.visitor_id)
        )
        .outerjoin(EVENTS, EVENTS.c.id == JOURNEYS.c.wake_event_id)
    )
    claimed = (
        select(*CLAIMED_JOURNEY_COLUMNS, *CLAIMED_CUSTOMER, *CLAIMED_WAKE)
        .select_from(joined)
        .where(JOURNEYS.c.id.in_(select(taken.c.journey_id)))
    )
    return (await conn.execute(claimed)).all()


async def drop_leases(session: AsyncSession, ids: list[int]) -> None:
    """Delete the claims on these journeys: a take-over; the walk in flight drops its result.

    Call it after the statement that changed the journeys, in the same
    transaction: journey row first, lease row second, like every claim and write.
    """
    await session.execute(delete(LEASES).where(among(session, LEASES.c.journey_id, ids)))


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
        .where(OUTBOX_DUE_SQL, OUTBOX.c.next_attempt_at <= now)
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
        .returning(*OUTBOX_CLAIMED)
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
