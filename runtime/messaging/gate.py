"""The send gate: every email/SMS/webhook passes here between the outbox and its deliverer.

For each claimed message the gate, in one short transaction (the messages
of a claim that need no contact all at once, in the claim's own
transaction: ``clear_many``):

1. returns at once if the delivery ledger says a provider already accepted it
   (a worker crashed after the send but before the outbox recorded it), and
   refuses it (``LeaseLost``) when the outbox row is no longer this sender's
   or its lease ran out: another live sender holds it;
2. checks the suppression list (and, for marketing, the contact's consent);
3. for marketing, checks the frequency caps and the sending window in the
   contact's time zone;
4. either withholds the message, writing ``suppressed`` or ``deferred`` with the
   reason on its outbox row itself, or reserves a ``sending`` row in the ledger
   (which is what the caps count).

After the provider call the ledger row becomes ``accepted`` (with the
provider's answer) or ``failed``; a hard bounce suppresses the address.

What remains at least once: a crash between the provider accepting the message
and the ledger commit that follows (a few milliseconds), or a sender lost
while waiting for the provider's answer: only the messages on its open
connections. The retry then sends again with the same idempotency key (email:
the same Message-ID), so receivers can drop it.

A withheld message raises ``Withheld`` after its row was written; the outbox
counts it as withheld and leaves the row as the gate wrote it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from nodes.sdk import Clock
from runtime import delivery
from runtime.delivery import (
    Delivered,
    Deliverer,
    HardBounce,
    LeaseLost,
    Outgoing,
    concurrency_of,
)
from runtime.messaging.fatigue import Cap, SendingWindow, cap_release, parse_caps, zone
from runtime.messaging.suppression import (
    address_for,
    blocking_reason,
    blocks,
    consent_withdrawn,
    listed,
    suppress,
)
from runtime.models import Delivery, DeliveryState, OutboxStatus, SuppressionReason
from runtime.settings import RuntimeSettings
from runtime.sql import CONTACTS, OUTBOX, among, dialect_name, upsert_insert

__all__ = ["GatePolicy", "GatedDeliverer", "Verdict", "Withheld", "accepted_row", "record_accepted"]

log = logging.getLogger(__name__)
DELIVERIES: Table = Delivery.__table__  # type: ignore[assignment]
_COUNTED = (DeliveryState.sending.value, DeliveryState.accepted.value)
_LOCK_STRIPES = 64
# Fatigue rules are about people's inboxes and phones; webhooks and tasks are not counted.
PERSONAL_CHANNELS = ("email", "sms")


class Withheld(delivery.Withheld):
    """The gate kept the message back and already recorded why on its outbox row."""


@dataclass(frozen=True)
class Verdict:
    """Why a message may not leave now: ``suppressed`` for good, or ``deferred`` until ``until``."""

    status: OutboxStatus
    reason: str
    until: datetime | None = None


@dataclass(frozen=True)
class GatePolicy:
    """The fatigue rules and defaults the gate applies (from the settings)."""

    caps: tuple[Cap, ...] = ()
    window: SendingWindow = field(
        default_factory=lambda: SendingWindow(None, None, frozenset(range(7)))
    )
    default_timezone: str = "UTC"
    when_blocked: str = "defer"
    region: str = "SE"

    @classmethod
    def from_settings(cls, settings: RuntimeSettings) -> GatePolicy:
        return cls(
            caps=tuple(parse_caps(settings.frequency_caps)),
            window=SendingWindow.parse(settings.quiet_hours, settings.sending_days),
            default_timezone=settings.default_timezone,
            when_blocked=settings.when_blocked,
            region=settings.sms_default_region,
        )


class GatedDeliverer:
    """Wraps one channel's deliverer with suppression, fatigue and the delivery ledger."""

    def __init__(
        self,
        inner: Deliverer,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        policy: GatePolicy,
        *,
        personal: bool | None = None,
    ) -> None:
        self.inner = inner
        # Whether fatigue rules apply (a channel's declaration; by name when not given).
        self.personal = personal
        self.sessions = sessions
        self.clock = clock
        self.policy = policy
        # Decisions for one contact run one at a time in this process, so two
        # concurrent sends cannot both fit under the same cap (PostgreSQL also
        # locks the contact row for other processes).
        self._locks = [asyncio.Lock() for _ in range(_LOCK_STRIPES)]
        self.concurrency = concurrency_of(inner)

    async def deliver(self, message: Outgoing) -> Delivered:
        lock = self._locks[(message.contact_id or message.id) % _LOCK_STRIPES]
        async with lock:
            verdict, earlier = await self._clear(message)
        if earlier is not None:
            return earlier
        if verdict is not None:
            raise Withheld(verdict.reason)
        delivered = await self.send_cleared(message)
        async with self.sessions() as session, session.begin():
            await record_accepted(session, [accepted_row(message.id, delivered, self.clock.now())])
        return delivered

    def needs_contact(self, message: Outgoing) -> bool:
        """Whether the decision reads (and on PostgreSQL locks) the contact: marketing on a
        personal channel, for its consent, caps and sending window."""
        personal = (
            self.personal if self.personal is not None else message.channel in PERSONAL_CHANNELS
        )
        return message.category == "marketing" and personal

    async def clear_many(
        self,
        session: AsyncSession,
        messages: Sequence[Outgoing],
        now: datetime,
        *,
        accepted: Mapping[int, str | None] | None = None,
    ) -> dict[int, Delivered | Verdict | None]:
        """Clear a batch the caller just claimed in ``session`` (the claim's transaction).

        One transaction and a few queries for the whole batch instead of one
        transaction per message: the claim itself proves the rows are this
        sender's, and the caller checks before each send that its lease still
        runs. The answer per message id: ``Delivered`` (a provider accepted it
        already: do not send), a ``Verdict`` (withheld, its row written) or
        ``None`` (cleared: send it with ``send_cleared``). Messages that need
        their contact (see ``needs_contact``) are left out: they go through ``deliver``.
        ``accepted``: what the ledger says a provider accepted among them (id -> the
        provider's id), when the caller read it with the claim.
        """
        batch = [m for m in messages if not self.needs_contact(m)]
        if not batch:
            return {}
        ids = [m.id for m in batch]
        earlier = (
            dict(accepted)
            if accepted is not None
            else {
                int(row.outbox_id): row.provider_message_id
                for row in await session.execute(
                    select(DELIVERIES.c.outbox_id, DELIVERIES.c.provider_message_id).where(
                        among(session, DELIVERIES.c.outbox_id, ids),
                        DELIVERIES.c.state == DeliveryState.accepted.value,
                    )
                )
            }
        )
        addresses = {
            m.id: address_for(m.channel, m.payload.get("to"), self.policy.region) for m in batch
        }
        answers: dict[int, Delivered | Verdict | None] = {}
        reserve: list[dict[str, Any]] = []
        for channel in sorted({m.channel for m in batch}):
            wanted = (a for m in batch if m.channel == channel and (a := addresses[m.id]))
            reasons = await listed(session, channel, wanted)
            for message in (m for m in batch if m.channel == channel):
                answers[message.id] = await self._clear_one(
                    session, message, earlier, reasons.get(addresses[message.id] or ""), now
                )
                if answers[message.id] is None:
                    reserve.append(_ledger_row(message, now))
        if reserve:
            await session.execute(_reserve_statement(dialect_name(session)), reserve)
        return answers

    async def _clear_one(
        self,
        session: AsyncSession,
        message: Outgoing,
        earlier: dict[int, str | None],
        reason: str | None,
        now: datetime,
    ) -> Delivered | Verdict | None:
        if message.id in earlier:
            log.info("outbox message %s was already accepted; not sending again", message.id)
            return Delivered(provider_message_id=earlier[message.id])
        if not blocks(reason, marketing=message.category == "marketing"):
            return None
        verdict = Verdict(
            OutboxStatus.suppressed, f"suppressed: the address is on the list ({reason})"
        )
        await _withhold(session, message.id, verdict, now)
        return verdict

    async def send_cleared(self, message: Outgoing) -> Delivered:
        """Hand a cleared message to the channel; a failure is written to the ledger here,
        acceptance is the caller's to record (``record_accepted``), with its own results."""
        try:
            return await self.inner.deliver(message)
        except HardBounce as exc:
            await self._record_failure(message, exc, bounce=exc.address)
            raise
        except Exception as exc:
            await self._record_failure(message, exc)
            raise

    async def _clear(self, message: Outgoing) -> tuple[Verdict | None, Delivered | None]:
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            if message.lease_owner is not None:
                await _check_holder(session, message, now)
            earlier = (
                await session.execute(
                    select(DELIVERIES.c.state, DELIVERIES.c.provider_message_id).where(
                        DELIVERIES.c.outbox_id == message.id
                    )
                )
            ).one_or_none()
            if earlier is not None and earlier.state == DeliveryState.accepted.value:
                log.info("outbox message %s was already accepted; not sending again", message.id)
                return None, Delivered(provider_message_id=earlier.provider_message_id)
            verdict = await self.decide(session, message, now)
            if verdict is not None:
                await _withhold(session, message.id, verdict, now)
                return verdict, None
            stmt = upsert_insert(session, DELIVERIES).values(_ledger_row(message, now))
            await session.execute(
                stmt.on_conflict_do_update(
                    index_elements=[DELIVERIES.c.outbox_id],
                    set_={"state": DeliveryState.sending.value, "cleared_at": now},
                )
            )
        return None, None

    async def decide(
        self, session: AsyncSession, message: Outgoing, now: datetime
    ) -> Verdict | None:
        """Whether ``message`` may leave now (``None``) or why not (see ``Verdict``)."""
        marketing = message.category == "marketing"
        address = address_for(message.channel, message.payload.get("to"), self.policy.region)
        blocked = await blocking_reason(
            session, channel=message.channel, address=address, marketing=marketing
        )
        if blocked is not None:
            return Verdict(
                OutboxStatus.suppressed, f"suppressed: the address is on the list ({blocked})"
            )
        personal = (
            self.personal if self.personal is not None else message.channel in PERSONAL_CHANNELS
        )
        if not marketing or not personal:
            return None
        contact = await self._contact(session, message.contact_id)
        if contact is not None and consent_withdrawn(contact.consent, message.channel):
            return Verdict(
                OutboxStatus.suppressed,
                f"no consent: the contact unsubscribed from {message.channel}",
            )
        tz = zone(contact.timezone if contact is not None else None, self.policy.default_timezone)
        when, why = now, ""
        release, cap = await self._cap_release(session, message, now)
        if release is not None and cap is not None:
            when, why = release, cap.describe()
        opens = self.policy.window.next_open(when, tz)
        if opens > when:
            when, why = (
                opens,
                why or f"outside the sending window in the contact's time zone ({tz.key})",
            )
        if when <= now:
            return None
        action = str(message.payload.get("when_blocked") or self.policy.when_blocked)
        if action == "drop":
            return Verdict(OutboxStatus.suppressed, f"dropped: {why}")
        return Verdict(OutboxStatus.deferred, f"deferred until {when.isoformat()}: {why}", when)

    async def _contact(self, session: AsyncSession, contact_id: int | None) -> Any:
        if contact_id is None:
            return None
        query = select(CONTACTS.c.id, CONTACTS.c.timezone, CONTACTS.c.consent).where(
            CONTACTS.c.id == contact_id
        )
        if dialect_name(session) == "postgresql":
            query = query.with_for_update()  # serialises cap decisions across processes
        return (await session.execute(query)).one_or_none()

    async def _cap_release(
        self, session: AsyncSession, message: Outgoing, now: datetime
    ) -> tuple[datetime | None, Cap | None]:
        caps = [c for c in self.policy.caps if c.channel in (message.channel, "all")]
        if not caps or message.contact_id is None:
            return None, None
        longest = max(c.period for c in caps)
        rows = (
            await session.execute(
                select(DELIVERIES.c.channel, DELIVERIES.c.cleared_at).where(
                    DELIVERIES.c.contact_id == message.contact_id,
                    DELIVERIES.c.category == "marketing",
                    DELIVERIES.c.channel.in_(PERSONAL_CHANNELS),
                    DELIVERIES.c.state.in_(_COUNTED),
                    DELIVERIES.c.cleared_at > now - longest,
                    DELIVERIES.c.outbox_id != message.id,
                )
            )
        ).all()
        latest: tuple[datetime | None, Cap | None] = (None, None)
        for cap in caps:
            times = [r.cleared_at for r in rows if cap.channel in ("all", r.channel)]
            release = cap_release(cap, times, now)
            if release is not None and (latest[0] is None or release > latest[0]):
                latest = (release, cap)
        return latest

    async def _record_failure(
        self, message: Outgoing, exc: Exception, bounce: str | None = None
    ) -> None:
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.outbox_id == message.id)
                .values(
                    state=DeliveryState.failed.value, detail=f"{type(exc).__name__}: {exc}"[:2000]
                )
            )
            address = address_for(message.channel, bounce, self.policy.region) if bounce else None
            if address:
                await suppress(
                    session,
                    channel=message.channel,
                    address=address,
                    reason=SuppressionReason.hard_bounce,
                    now=now,
                    contact_id=message.contact_id,
                    source=f"outbox message {message.id}",
                )


async def _check_holder(session: AsyncSession, message: Outgoing, now: datetime) -> None:
    row = (
        await session.execute(
            select(OUTBOX.c.status, OUTBOX.c.lease_owner, OUTBOX.c.lease_until).where(
                OUTBOX.c.id == message.id
            )
        )
    ).one_or_none()
    if (
        row is None
        or row.status != OutboxStatus.sending.value
        or row.lease_owner != message.lease_owner
        or row.lease_until is None
        or row.lease_until <= now
    ):
        raise LeaseLost(f"outbox message {message.id} is no longer held by {message.lease_owner}")


async def _withhold(session: AsyncSession, outbox_id: int, verdict: Verdict, now: datetime) -> None:
    # A deferral is not a failed attempt: give the attempt the claim counted back.
    values: dict[str, Any] = {
        "status": verdict.status.value,
        "status_reason": verdict.reason,
        "lease_owner": None,
        "lease_until": None,
    }
    if verdict.status is OutboxStatus.deferred:
        values["next_attempt_at"] = verdict.until or now + timedelta(minutes=5)
        values["attempts"] = OUTBOX.c.attempts - 1
    await session.execute(
        update(OUTBOX)
        .where(OUTBOX.c.id == outbox_id, OUTBOX.c.status == OutboxStatus.sending.value)
        .values(**values)
    )


@functools.lru_cache(maxsize=4)
def _reserve_statement(dialect: str) -> Any:
    # Built once per database kind: constructing the upsert cost more than running it.
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(DELIVERIES)
    return stmt.on_conflict_do_update(
        index_elements=[DELIVERIES.c.outbox_id],
        set_={"state": stmt.excluded.state, "cleared_at": stmt.excluded.cleared_at},
    )


def _ledger_row(message: Outgoing, now: datetime) -> dict[str, Any]:
    # The ledger's reservation: what the caps count while the provider call runs.
    return {
        "outbox_id": message.id,
        "contact_id": message.contact_id,
        "channel": message.channel,
        "category": message.category,
        "state": DeliveryState.sending.value,
        "cleared_at": now,
    }


_ACCEPT = (
    update(DELIVERIES)
    .where(DELIVERIES.c.outbox_id == bindparam("l_id"))
    .values(
        state=DeliveryState.accepted.value,
        provider_message_id=bindparam("l_provider_id"),
        detail=bindparam("l_detail"),
        accepted_at=bindparam("l_at"),
    )
)


def accepted_row(outbox_id: int, delivered: Delivered, now: datetime) -> dict[str, Any]:
    """The ledger's record of a provider's acceptance, for ``record_accepted``."""
    return {
        "l_id": outbox_id,
        "l_provider_id": delivered.provider_message_id,
        "l_detail": delivered.detail,
        "l_at": now,
    }


async def record_accepted(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Mark ledger rows accepted (rows from ``accepted_row``), many in one statement."""
    if rows:
        await session.execute(_ACCEPT, list(rows))
