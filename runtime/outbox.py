"""Outbox delivery: claim due messages, deliver them after commit, record each result.

States: ``pending`` (due at ``next_attempt_at``) -> ``sending`` (leased by a
sender) -> ``sent``; a failure goes back to ``pending`` with exponential
back-off, and after the attempt limit (or a permanent error) to ``dead``,
where an admin can see it and retry it (``runtime.admin.retry_message``).

A message in flight belongs to one sender:

- a sender claims a few rounds of what its channels take at once (``ROUNDS``
  times their concurrency), not more than it can send well within a lease
  (on PostgreSQL every channel's claim in one statement:
  ``runtime.outbox_claims.claim_all``);
- while any claimed message is unfinished, the sender renews the lease every
  third of it; messages it no longer holds (another sender took them over
  after a stall) are dropped from its batch unsent;
- the send gate checks in the database that each row is still this sender's:
  for messages that need no contact, for the whole claim in the claim's own
  transaction (``GatedDeliverer.clear_many``); for the others right before
  the provider call. Before each message the sender checks that its last
  renewal is younger than the lease;
- each result is committed as soon as the provider answers, in a group
  commit with the answers that came meanwhile (on PostgreSQL one statement
  in its own transaction), and the channel's slot is held until it is.

A sender that dies leaves ``sending`` rows whose lease runs out; the next
claim puts them back to ``pending``. The only messages that can then go out a
second time are those that were on an open provider connection when it died
(its answer never recorded), and they carry the same idempotency key (email:
the same Message-ID).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import bindparam, case, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from nodes.sdk import DELIVERY_EVENT
from runtime.claims import (
    release_stale_outbox,
    renew_outbox,
)
from runtime.delivery import (
    Delivered,
    Deliverer,
    LeaseLost,
    Outgoing,
    Withheld,
    concurrency_of,
)
from runtime.delivery.errors import is_permanent
from runtime.messaging.gate import (
    GatedDeliverer,
    Verdict,
    accepted_row,
    record_accepted,
)
from runtime.models import OutboxStatus
from runtime.outbox_claims import claim_all, claim_each, contact_locales
from runtime.outcomes import report_outcomes
from runtime.sql import OUTBOX, among, dialect_name

if TYPE_CHECKING:
    from runtime.engine import Runtime

__all__ = [
    "ROUNDS",
    "DeliveryReport",
    "NextClaim",
    "claim_size",
    "deliver_batch",
    "delivery_delay",
]

log = logging.getLogger(__name__)
_claims = itertools.count(1)
# A claim holds about this many rounds of what the channels take at once.
ROUNDS = 4
# Stale messages (their sender's lease ran out) are put back at most this often per lease.
RELEASE_EVERY = 10


@dataclass
class DeliveryReport:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    withheld: int = 0
    # Claimed, then taken over by another sender before it was sent (never sent here).
    lost: int = 0


def delivery_delay(attempts: int) -> timedelta:
    """Back-off after a failed delivery: 30 s, 1 min, 2 min ... capped at 6 hours."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 6 * 3600))


def claim_size(deliverer: Deliverer, limit: int) -> int:
    """How many of a channel's messages one claim takes: ``ROUNDS`` times what the channel
    sends at once, at most ``limit``."""
    return max(1, min(limit, ROUNDS * concurrency_of(deliverer)))


def _outgoing(row: Any, owner: str, locales: dict[int, str]) -> Outgoing:
    locale = locales.get(row.contact_id) if row.contact_id is not None else None
    return Outgoing(
        id=row.id,
        idempotency_key=row.idempotency_key,
        channel=row.channel,
        payload=row.payload or {},
        category=row.category,
        journey_id=row.journey_id,
        node_id=row.node_id,
        contact_id=row.contact_id,
        attempts=row.attempts,
        lease_owner=owner,
        extras={"locale": locale} if locale else {},
    )


async def _attempt(rt: Runtime, message: Outgoing) -> Delivered | Exception:
    deliverer = rt.deliverers.get(message.channel)
    if deliverer is None:
        return RuntimeError(f"no deliverer is installed for the {message.channel!r} channel")
    try:
        return await deliverer.deliver(message)
    except (Withheld, LeaseLost) as exc:
        log.info("outbox message %s not sent: %s", message.id, exc)
        return exc
    except Exception as exc:
        log.warning(
            "delivering outbox message %s failed: %s: %s", message.id, type(exc).__name__, exc
        )
        return exc


class _Claim:
    """One sender's claim on a batch: renewed while unfinished, checked before each send."""

    def __init__(self, rt: Runtime, owner: str, ids: Iterable[int], claimed: float) -> None:
        self.rt = rt
        self.owner = owner
        self.open = set(ids)
        self.lost: set[int] = set()
        # Recorded, and no journey waits for their outcome: ``report_outcomes`` skips them.
        self.unwatched: set[int] = set()
        # When the claim's transaction began: its lease in the database runs from no earlier.
        self.renewed = claimed
        # Set when at most one round (``round_size``) of the claim is unfinished.
        self.last_round: asyncio.Event | None = None
        self.round_size = 0

    def finishing(self) -> None:
        if self.last_round is not None and len(self.open) <= self.round_size:
            self.last_round.set()

    def holds(self, message_id: int) -> bool:
        """Still ours: not taken over, and renewed less than a lease ago."""
        fresh = time.monotonic() - self.renewed < self.rt.lease.total_seconds()
        return fresh and message_id not in self.lost

    async def renew_until_cancelled(self) -> None:
        interval = self.rt.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            ids = sorted(self.open)
            if not ids:
                continue
            started = time.monotonic()
            try:
                async with self.rt.sessions() as session, session.begin():
                    held = await renew_outbox(
                        session,
                        owner=self.owner,
                        ids=ids,
                        now=self.rt.clock.now(),
                        lease=self.rt.lease,
                    )
            except Exception as exc:  # the lease keeps running out; holds() will say so
                log.warning("could not renew the outbox claim %s: %s", self.owner, exc)
                continue
            self.renewed = started
            gone = (set(ids) - held) & self.open
            if gone:
                log.warning("claim %s lost %d messages to another sender", self.owner, len(gone))
                self.lost |= gone


def _result_row(
    rt: Runtime, message: Outgoing, outcome: Delivered | Exception, now: datetime
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "o_id": message.id,
        "o_status": OutboxStatus.sent.value,
        "o_next": now,
        "o_error": None,
        "o_reason": None,
        "o_provider_id": None,
        "o_sent_at": None,
    }
    if isinstance(outcome, Delivered):
        row.update(o_provider_id=outcome.provider_message_id, o_sent_at=now)
        return row
    error = f"{type(outcome).__name__}: {outcome}"
    row["o_error"] = error
    if is_permanent(outcome) or message.attempts >= rt.max_delivery_attempts:
        row.update(o_status=OutboxStatus.dead.value, o_reason=str(outcome) or error)
    else:
        row.update(
            o_status=OutboxStatus.pending.value, o_next=now + delivery_delay(message.attempts)
        )
    return row


_RECORD = (
    update(OUTBOX)
    .where(
        OUTBOX.c.id == bindparam("o_id"),
        OUTBOX.c.lease_owner == bindparam("o_owner"),
        text("outbox_messages.status = 'sending'"),
    )
    .values(
        status=bindparam("o_status"),
        next_attempt_at=bindparam("o_next"),
        last_error=bindparam("o_error"),
        status_reason=bindparam("o_reason"),
        provider_message_id=bindparam("o_provider_id"),
        sent_at=bindparam("o_sent_at"),
        lease_owner=None,
        lease_until=None,
    )
)


def _concurrency(rt: Runtime, channel: str) -> int:
    deliverer = rt.deliverers.get(channel)
    return concurrency_of(deliverer) if deliverer is not None else 1


def _gate(rt: Runtime, channel: str) -> asyncio.Semaphore:
    gate = rt.channel_gates.get(channel)
    if gate is None:
        gate = rt.channel_gates[channel] = asyncio.Semaphore(_concurrency(rt, channel))
    return gate


# A result to commit: the outbox row's values, the ledger's acceptance (or None), its waiter
# (the answer: None when the row is no longer this sender's, else whether a journey waits
# for the message's outcome; True when unknown).
_Result = tuple[dict[str, Any], dict[str, Any] | None, "asyncio.Future[bool | None]"]


# Every result of a group and the ledger's acceptances in one statement, its own
# transaction: one round trip instead of BEGIN, two updates and COMMIT. Each row goes
# as a JSON array (see runtime.bulk_insert); a row another sender took over is left
# alone, and the ids written come back, each with whether its journey waits for the
# message's outcome (``runtime.outcomes``; most do not, and need no query after the
# claim). The ledger is written whatever the outbox row says: it remembers what a
# provider accepted. Sent on the asyncpg connection itself: through SQLAlchemy's
# execution layer the statement cost about six times the CPU.
_RECORD_ALL = (
    "WITH r AS (SELECT CAST(e->>0 AS BIGINT) AS id, e->>1 AS owner, e->>2 AS status, "
    "CAST(e->>3 AS TIMESTAMP WITH TIME ZONE) AS next_at, e->>4 AS error, e->>5 AS reason, "
    "e->>6 AS provider_id, CAST(e->>7 AS TIMESTAMP WITH TIME ZONE) AS sent_at "
    "FROM jsonb_array_elements(CAST($1::text AS JSONB)) AS e), "
    "l AS (SELECT CAST(e->>0 AS BIGINT) AS id, e->>1 AS provider_id, e->>2 AS detail, "
    "CAST(e->>3 AS TIMESTAMP WITH TIME ZONE) AS at "
    "FROM jsonb_array_elements(CAST($2::text AS JSONB)) AS e), "
    "a AS (UPDATE deliveries SET state = 'accepted', provider_message_id = l.provider_id, "
    "detail = l.detail, accepted_at = l.at FROM l WHERE deliveries.outbox_id = l.id) "
    "UPDATE outbox_messages SET status = r.status, next_attempt_at = r.next_at, "
    "last_error = r.error, status_reason = r.reason, provider_message_id = r.provider_id, "
    "sent_at = r.sent_at, lease_owner = NULL, lease_until = NULL FROM r "
    "WHERE outbox_messages.id = r.id AND outbox_messages.lease_owner = r.owner "
    "AND outbox_messages.status = 'sending' RETURNING outbox_messages.id, "
    "EXISTS (SELECT 1 FROM journeys WHERE journeys.id = outbox_messages.journey_id "
    "AND journeys.wait_event_type = $3::text) AS waits"
)
_RESULT_FIELDS = (
    *("o_id", "o_owner", "o_status", "o_next", "o_error", "o_reason"),
    *("o_provider_id", "o_sent_at"),
)
_ACCEPTED_FIELDS = ("l_id", "l_provider_id", "l_detail", "l_at")


async def _record_all(connection: Any, batch: list[_Result]) -> dict[int, bool]:
    """One group's results on an asyncpg connection outside a transaction (autocommit):
    the ids recorded, each with whether a journey waits for its outcome."""
    results = [[row[k] for k in _RESULT_FIELDS] for row, _, _ in batch]
    accepted = [[a[k] for k in _ACCEPTED_FIELDS] for _, a, _ in batch if a is not None]
    found = await connection.fetch(
        _RECORD_ALL,
        msgspec.json.encode(results).decode(),
        msgspec.json.encode(accepted).decode(),
        DELIVERY_EVENT,
    )
    return {int(row[0]): bool(row[1]) for row in found}


def _settle(batch: list[_Result], recorded: dict[int, bool]) -> None:
    for row, _, done in batch:
        if not done.done():  # a cancelled sender no longer waits
            done.set_result(recorded.get(row["o_id"]))


def _fail(batch: list[_Result], exc: Exception) -> None:
    for _, _, done in batch:
        if not done.done():
            done.set_exception(exc)


class _Recorder:
    """Commits delivery results in groups: what answered while one commit ran goes in the next.

    The first answer is committed at once, as before; under load each commit
    carries every answer that arrived meanwhile (from every claim of the
    process), so the sent messages of a claim cost one statement per commit
    instead of a transaction each. A provider's acceptance and the ledger's
    record of it commit together. On PostgreSQL a run of groups shares one
    pooled connection, checked out while answers keep coming and returned when
    none wait.
    """

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.queue: list[_Result] = []
        self.flushing: asyncio.Task[None] | None = None
        # PostgreSQL: each group is one statement on the driver's connection, autocommit.
        self.engine: AsyncEngine | None = rt.bound_engine if rt.on_postgresql else None
        # When this process last put back the messages of senders whose lease ran out.
        self.released_at: datetime | None = None

    def release_due(self, now: datetime) -> bool:
        """Whether a claim at ``now`` first puts back stale messages: at most every tenth of
        a lease (by the runtime's clock), not once per claim. A message whose sender died is
        stale a lease after its claim, so it waits at most a tenth of a lease longer."""
        last = self.released_at
        if last is not None and last <= now < last + self.rt.lease / RELEASE_EVERY:
            return False
        self.released_at = now
        return True

    async def record(self, row: dict[str, Any], accepted: dict[str, Any] | None) -> bool | None:
        """Commit one result (``accepted``: the ledger row to mark). None: no longer ours;
        else whether a journey may wait for the message's outcome."""
        done: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        self.queue.append((row, accepted, done))
        if self.flushing is None or self.flushing.done():
            self.flushing = asyncio.create_task(self._flush())
        return await done

    async def _flush(self) -> None:
        while self.queue:
            if self.engine is not None:
                await self._flush_postgresql(self.engine)
                continue
            batch, self.queue = self.queue, []
            try:
                recorded = await self._record_in_session(batch)
            except Exception as exc:
                _fail(batch, exc)
                continue
            _settle(batch, dict.fromkeys(recorded, True))

    async def _flush_postgresql(self, engine: AsyncEngine) -> None:
        """Record groups on one connection until no answer waits; a failure fails the group
        it hit (or, when no connection could be had, every waiting answer)."""
        batch: list[_Result] = []
        connected = False
        try:
            async with engine.connect() as conn:
                # The driver's own connection, never in a transaction here: each statement
                # commits by itself. SQLAlchemy's reset on return has nothing to roll back.
                raw = (await conn.get_raw_connection()).driver_connection
                connected = True
                try:
                    while self.queue:
                        batch, self.queue = self.queue, []
                        recorded = await _record_all(raw, batch)
                        _settle(batch, recorded)
                        batch = []
                except BaseException:
                    # SQLAlchemy never saw the error: the connection (perhaps broken) is
                    # discarded rather than handed to the next user of the pool.
                    await conn.invalidate()
                    raise
        except Exception as exc:
            if not connected:
                batch, self.queue = self.queue, []
            _fail(batch, exc)

    async def _record_in_session(self, batch: list[_Result]) -> set[int]:
        async with self.rt.sessions() as session, session.begin():
            await record_accepted(session, [a for _, a, _ in batch if a is not None])
            recorded: set[int] = set()
            sent = [row for row, _, _ in batch if _sent(row)]
            for owner in sorted({row["o_owner"] for row in sent}):
                mine = [row for row in sent if row["o_owner"] == owner]
                recorded |= await _record_sent(session, mine)
            for row, _, _ in batch:
                if not _sent(row):
                    result = await session.execute(_RECORD, row)
                    if result.rowcount:  # type: ignore[attr-defined]
                        recorded.add(row["o_id"])
        return recorded


def _sent(row: dict[str, Any]) -> bool:
    return bool(row["o_status"] == OutboxStatus.sent.value)


async def _record_sent(session: AsyncSession, rows: list[dict[str, Any]]) -> set[int]:
    """Record a group of sent messages of one claim in one statement; returns those recorded
    (a row another sender took over is left alone)."""
    if not rows:
        return set()
    if len(rows) == 1:
        result = await session.execute(_RECORD, rows[0])
        return {rows[0]["o_id"]} if result.rowcount else set()  # type: ignore[attr-defined]
    ids = [row["o_id"] for row in rows]
    sent_at = max(row["o_sent_at"] for row in rows)
    result = await session.execute(
        update(OUTBOX)
        .where(
            among(session, OUTBOX.c.id, ids),
            OUTBOX.c.lease_owner == rows[0]["o_owner"],
            text("outbox_messages.status = 'sending'"),
        )
        .values(
            status=OutboxStatus.sent.value,
            next_attempt_at=sent_at,
            last_error=None,
            status_reason=None,
            provider_message_id=case(
                {row["o_id"]: row["o_provider_id"] for row in rows}, value=OUTBOX.c.id
            ),
            sent_at=sent_at,
            lease_owner=None,
            lease_until=None,
        )
        .returning(OUTBOX.c.id)
    )
    return {int(found) for found in result.scalars()}


# What a claim's clearing answered per message: sent already, withheld, cleared (None).
Cleared = Delivered | Verdict | None
_UNCLEARED = object()  # not cleared with the claim: the channel's deliver() clears it


async def _attempt_cleared(
    rt: Runtime, message: Outgoing, cleared: Cleared | object
) -> Delivered | Exception:
    if cleared is _UNCLEARED:
        return await _attempt(rt, message)
    if isinstance(cleared, Delivered):
        return cleared
    if isinstance(cleared, Verdict):
        return Withheld(cleared.reason)
    gated = rt.deliverers[message.channel]
    assert isinstance(gated, GatedDeliverer)
    try:
        return await gated.send_cleared(message)
    except Exception as exc:
        log.warning(
            "delivering outbox message %s failed: %s: %s", message.id, type(exc).__name__, exc
        )
        return exc


async def _send(
    rt: Runtime,
    claim: _Claim,
    recorder: _Recorder,
    message: Outgoing,
    cleared: Cleared | object,
    report: DeliveryReport,
) -> None:
    # The channel's slot is held until the result is committed, so a sender that dies
    # leaves at most one answered-but-unrecorded message per slot (its open connections).
    async with _gate(rt, message.channel):
        try:
            status = await _send_and_record(rt, claim, recorder, message, cleared)
        finally:
            claim.open.discard(message.id)
            claim.finishing()
    if status == "withheld":
        report.withheld += 1
    elif status == "lost":
        report.lost += 1
    elif status == OutboxStatus.sent.value:
        report.sent += 1
    elif status == OutboxStatus.dead.value:
        report.dead += 1
    elif status is not None:
        report.retried += 1


async def _send_and_record(
    rt: Runtime, claim: _Claim, recorder: _Recorder, message: Outgoing, cleared: Cleared | object
) -> str | None:
    """Send one message and commit its result; what to count it as (None: unknown)."""
    # Fenced: a sender whose claim ran out stops before its next message.
    outcome: Delivered | Exception = (
        await _attempt_cleared(rt, message, cleared)
        if claim.holds(message.id)
        else LeaseLost("claim expired")
    )
    if isinstance(outcome, Withheld):
        return "withheld"
    if isinstance(outcome, LeaseLost):
        return "lost"
    now = rt.clock.now()
    row = _result_row(rt, message, outcome, now) | {"o_owner": claim.owner}
    # Acceptance of a message cleared with the claim goes in the ledger with its result.
    accepted = (
        accepted_row(message.id, outcome, now)
        if cleared is None and isinstance(outcome, Delivered)
        else None
    )
    try:
        waits = await recorder.record(row, accepted)
    except Exception as exc:  # the lease runs out; the ledger remembers what was accepted
        log.warning("could not record outbox message %s: %s", message.id, exc)
        return None
    if waits is None:
        return "lost"
    if not waits:
        claim.unwatched.add(message.id)
    return str(row["o_status"])


async def _clear_claimed(
    rt: Runtime,
    session: AsyncSession,
    messages: list[Outgoing],
    now: datetime,
    accepted: dict[int, str | None] | None,
) -> dict[int, Cleared]:
    """Clear the claimed messages of gated channels in the claim's own transaction."""
    answers: dict[int, Cleared] = {}
    for channel in sorted({m.channel for m in messages}):
        deliverer = rt.deliverers.get(channel)
        if isinstance(deliverer, GatedDeliverer):
            batch = [m for m in messages if m.channel == channel]
            answers.update(await deliverer.clear_many(session, batch, now, accepted=accepted))
    return answers


@dataclass
class NextClaim:
    """When a caller of ``deliver_batch`` may take its next claim: ``ready`` is set once
    no more than one round of this claim is unfinished (what its channels send at
    once), or at once when it claimed nothing. The next claim's messages then wait
    for one round at most. ``claimed``: how many this claim took."""

    ready: asyncio.Event = field(default_factory=asyncio.Event)
    claimed: int = 0


async def deliver_batch(
    rt: Runtime, limit: int | None = None, *, next_claim: NextClaim | None = None
) -> DeliveryReport:
    """Deliver one claim of due messages per channel; returns counts (``claimed`` 0: idle)."""
    owner = f"{rt.worker_id}:o{next(_claims)}"
    now = rt.clock.now()
    claimed = time.monotonic()
    limit = limit or rt.settings.batch_size
    channels = sorted(rt.deliverers)
    # One recorder per runtime: concurrent claims of this process share its commits.
    recorder = rt.outbox_recorder = rt.outbox_recorder or _Recorder(rt)
    async with rt.sessions() as session, session.begin():
        if recorder.release_due(now):
            await release_stale_outbox(session, now=now)
        # Each channel's claim is sized to that channel, so a slow channel's backlog is
        # shared between the workers instead of piling up behind one of them.
        sizes = {channel: claim_size(rt.deliverers[channel], limit) for channel in channels}
        if dialect_name(session) == "postgresql":
            rows, accepted = await claim_all(
                session, owner, now, sizes, min(limit, ROUNDS), lease=rt.lease
            )
            locales = {
                r.contact_id: str(r.locale)
                for r in rows
                if r.locale is not None and r.channel == "email"
            }
        else:
            rows = await claim_each(session, owner, now, sizes, min(limit, ROUNDS), lease=rt.lease)
            accepted = None
            # The language of each email's footer: its contact's, read with the claim.
            locales = await contact_locales(
                session, {r.contact_id for r in rows if r.contact_id and r.channel == "email"}
            )
        messages = [_outgoing(row, owner, locales) for row in rows]
        cleared = await _clear_claimed(rt, session, messages, now, accepted) if messages else {}
    report = DeliveryReport(claimed=len(rows))
    if next_claim is not None:
        next_claim.claimed = len(rows)
    if not rows:
        if next_claim is not None:
            next_claim.ready.set()
        return report
    claim = _Claim(rt, owner, (m.id for m in messages), claimed)
    if next_claim is not None:
        claim.last_round = next_claim.ready
        claim.round_size = max(_concurrency(rt, channel) for channel in {m.channel for m in rows})
        claim.finishing()
    renewal = asyncio.create_task(claim.renew_until_cancelled())
    try:
        await asyncio.gather(
            *(
                _send(rt, claim, recorder, m, cleared.get(m.id, _UNCLEARED), report)
                for m in messages
            )
        )
    finally:
        renewal.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewal
    # Delivery outcomes as ports: wake the journeys that wait for these messages' outcomes
    # (the result statement said which of those it recorded have none: no query for them).
    await report_outcomes(rt, [m.id for m in messages if m.id not in claim.unwatched])
    return report
