"""Outbox delivery: claim due messages, deliver them after commit, record the results.

States: ``pending`` (due at ``next_attempt_at``) -> ``sending`` (leased by a
deliverer) -> ``sent``; a failure goes back to ``pending`` with exponential
back-off, and after the attempt limit (or a permanent error) to ``dead``,
where an admin can see it and retry it (``runtime.admin.retry_message``).
A worker that dies while sending leaves ``sending`` rows whose lease expires;
the next pass puts them back to ``pending``. Delivery is at least once: the
idempotency key travels with every attempt so receivers can drop repeats.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, text, update

from runtime.claims import claim_outbox, release_stale_outbox
from runtime.delivery import Delivered, Outgoing, PermanentError, Withheld
from runtime.models import OutboxStatus
from runtime.outcomes import report_outcomes
from runtime.sql import OUTBOX

if TYPE_CHECKING:
    from runtime.engine import Runtime

__all__ = ["DeliveryReport", "deliver_batch", "delivery_delay"]

log = logging.getLogger(__name__)
_claims = itertools.count(1)
# Deliveries of one batch run concurrently, up to this many at a time.
CONCURRENCY = 16


@dataclass
class DeliveryReport:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    withheld: int = 0


def delivery_delay(attempts: int) -> timedelta:
    """Back-off after a failed delivery: 30 s, 1 min, 2 min ... capped at 6 hours."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 6 * 3600))


def _outgoing(row: Any) -> Outgoing:
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
    )


async def _attempt(
    rt: Runtime, message: Outgoing, gate: asyncio.Semaphore
) -> Delivered | Exception:
    deliverer = rt.deliverers.get(message.channel)
    if deliverer is None:
        return RuntimeError(f"no deliverer is installed for the {message.channel!r} channel")
    async with gate:
        try:
            return await deliverer.deliver(message)
        except Withheld as exc:
            log.info("outbox message %s withheld: %s", message.id, exc)
            return exc
        except Exception as exc:
            log.warning(
                "delivering outbox message %s failed: %s: %s", message.id, type(exc).__name__, exc
            )
            return exc


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
    if isinstance(outcome, PermanentError) or message.attempts >= rt.max_delivery_attempts:
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


async def deliver_batch(rt: Runtime, limit: int | None = None) -> DeliveryReport:
    """Deliver one batch of due messages; returns counts (``claimed`` 0 means idle)."""
    owner = f"{rt.worker_id}:o{next(_claims)}"
    now = rt.clock.now()
    async with rt.sessions() as session, session.begin():
        await release_stale_outbox(session, now=now)
        rows = await claim_outbox(
            session, owner=owner, now=now, limit=limit or rt.settings.batch_size, lease=rt.lease
        )
    report = DeliveryReport(claimed=len(rows))
    if not rows:
        return report
    messages = [_outgoing(row) for row in rows]
    gate = asyncio.Semaphore(CONCURRENCY)
    outcomes = await asyncio.gather(*(_attempt(rt, m, gate) for m in messages))
    done = rt.clock.now()
    results = [
        _result_row(rt, m, o, done) | {"o_owner": owner}
        for m, o in zip(messages, outcomes, strict=True)
        if not isinstance(o, Withheld)
    ]
    report.withheld = len(messages) - len(results)
    if results:
        async with rt.sessions() as session, session.begin():
            await session.execute(_RECORD, results)
    # Hook (issue 19, delivery outcomes as ports): wake journeys waiting for these outcomes.
    await report_outcomes(rt, [m.id for m in messages])
    for row in results:
        if row["o_status"] == OutboxStatus.sent.value:
            report.sent += 1
        elif row["o_status"] == OutboxStatus.dead.value:
            report.dead += 1
        else:
            report.retried += 1
    return report
