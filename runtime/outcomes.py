"""Delivery outcomes for journeys that wait on them (``nodes.sdk.delivery``).

After a delivery batch, the outbox hands the ids it handled to
``report_outcomes``. One query finds those whose delivery is settled for good
(sent; dead; suppressed by the gate) and whose journey waits at that step for
``DELIVERY_EVENT``; each such journey gets the event (delivered, or failed
with the provider's reason), which wakes it like any awaited event. Messages
nobody waits on cost that one query and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import select

from nodes.sdk import DELIVERY_EVENT
from runtime.sql import JOURNEYS, OUTBOX, among

if TYPE_CHECKING:
    from runtime.engine import Runtime

__all__ = ["SETTLED", "report_outcomes"]

# Outbox states after which a message will not be tried again without an admin.
SETTLED = ("sent", "dead", "suppressed")


async def report_outcomes(rt: Runtime, message_ids: Sequence[int]) -> int:
    """Wake the journeys waiting for these messages' outcomes; returns how many were told."""
    if not message_ids:
        return 0
    async with rt.sessions() as session:
        rows = (
            await session.execute(
                select(
                    OUTBOX.c.idempotency_key,
                    OUTBOX.c.status,
                    OUTBOX.c.status_reason,
                    OUTBOX.c.last_error,
                    JOURNEYS.c.contact_id,
                    JOURNEYS.c.visitor_id,
                )
                .join(JOURNEYS, JOURNEYS.c.id == OUTBOX.c.journey_id)
                .where(
                    among(session, OUTBOX.c.id, message_ids),
                    OUTBOX.c.status.in_(SETTLED),
                    JOURNEYS.c.wait_event_type == DELIVERY_EVENT,
                )
            )
        ).all()
    for row in rows:
        delivered = row.status == "sent"
        properties = {
            "message": row.idempotency_key,
            "outcome": "delivered" if delivered else "failed",
            "reason": None if delivered else (row.status_reason or row.last_error or row.status),
        }
        await rt.ingest(
            DELIVERY_EVENT,
            contact_id=row.contact_id,
            visitor_id=row.visitor_id if row.contact_id is None else None,
            properties=properties,
            dedupe_key=f"{DELIVERY_EVENT}:{row.idempotency_key}",
            source="outbox",
        )
    return len(rows)
