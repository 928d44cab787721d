"""Delivery outcomes as ports: an action can wait until its message was delivered or failed.

Messages leave through the outbox after the step commits, so a node does not
know at ``run`` time how its delivery went. An action that wants to branch on
it returns ``await_delivery(ctx, message)``: the journey waits at the node;
when the outbox has its answer (delivered, or failed for good: refused,
suppressed, or out of retries) the runtime wakes the journey with a
``DELIVERY_EVENT`` and the node runs again; ``delivery_outcome(ctx)`` then
goes to port "delivered" or "failed", keeping the provider's reason in the
journey data (and so in the run history)::

    ports = DELIVERY_PORTS

    async def run(self, ctx):
        if ctx.wake is not None:
            return delivery_outcome(ctx)
        return await_delivery(ctx, Message("webhook", {...}))
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from nodes.sdk.context import Context
from nodes.sdk.i18n import N_
from nodes.sdk.types import EventWait, Message, Outcome, Port, Wait

__all__ = [
    "DELIVERED",
    "DELIVERY_EVENT",
    "DELIVERY_PORTS",
    "FAILED",
    "await_delivery",
    "delivery_outcome",
    "message_key",
]

# The event the runtime records for a journey when a message it waits on is settled.
# Its properties: "message" (the idempotency key), "outcome" ("delivered" or
# "failed") and "reason" (the provider's answer when it failed).
DELIVERY_EVENT = "message.outcome"
DELIVERED = Port("delivered", N_("Delivered"))
FAILED = Port("failed", N_("Failed"))
DELIVERY_PORTS = (DELIVERED, FAILED)


def message_key(journey_id: int, node_id: str, visit: int, key: str = "0") -> str:
    """The outbox idempotency key of a message: the step identity plus the message's own key."""
    return f"j{journey_id}:{node_id}:{visit}:{key}"


def await_delivery(
    ctx: Context[Any], message: Message, *, timeout: timedelta | None = None
) -> Outcome:
    """Send ``message`` and wait at this node until its delivery is settled.

    With ``timeout`` the wait also ends after that long (``delivery_outcome``
    then says "failed" with the reason "no answer in time"; the message may
    still go out later).
    """
    journey = ctx.journey
    key = message_key(journey.id, journey.node_id, journey.visit, message.key)
    until = ctx.now + timeout if timeout is not None else None
    return Outcome.park(
        Wait(until=until, event=EventWait(DELIVERY_EVENT, {"message": key})), messages=(message,)
    )


def delivery_outcome(ctx: Context[Any]) -> Outcome:
    """After ``await_delivery``: go "delivered" or "failed" (the reason is in the journey data).

    The data is ``{<node id>: {"delivery": "delivered" | "failed", "reason": ...}}``.
    """
    event = ctx.wake.event if ctx.wake is not None else None
    if event is not None and event.properties.get("outcome") == "delivered":
        return Outcome.go("delivered", data={ctx.journey.node_id: {"delivery": "delivered"}})
    reason = str(event.properties.get("reason") or "") if event is not None else ""
    data = {"delivery": "failed", "reason": reason or "no answer in time"}
    return Outcome.go("failed", data={ctx.journey.node_id: data})
