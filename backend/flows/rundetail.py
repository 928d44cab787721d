"""One run's story, step by step: why each step ran, what it read, what it decided,
the messages it produced and what became of them, and the errors of its retries.

Everything comes from rows the runtime already keeps: the step rows (their
``output`` holds the wake-up, what the node read, its decision and its
errors), the journey's trigger data, the outbox and delivery ledger, and the
tracking events (opens, clicks, SMS receipts and bounces) of the contact.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import Delivery, Event, Journey, OutboxMessage, Step

# Tracking events that belong to one message (their properties name it).
MESSAGE_EVENTS = ("email.opened", "email.clicked", "sms.delivered", "sms.failed")
BOUNCE = "email.bounced"
# Enough for any run a person reads; a contact with more tracking events is cut here.
EVENT_LIMIT = 1000


@dataclass(frozen=True)
class HistoryItem:
    """One line of a message's delivery history; ``kind`` picks its words in the template."""

    kind: str  # queued, withheld, deferred, retrying, failed, sent, accepted, and event types
    at: datetime | None
    detail: str = ""


@dataclass
class MessageView:
    message: OutboxMessage
    history: list[HistoryItem] = field(default_factory=list)


@dataclass
class StepView:
    step: Step
    label: str
    why: str  # entered, moved, timer, event, retried
    trigger: dict[str, Any] | None = None
    wake_event: Event | None = None
    came_from: str = ""
    seen_profile: dict[str, Any] = field(default_factory=dict)
    seen_events: list[dict[str, Any]] = field(default_factory=list)
    events_read: int = 0
    decided: dict[str, Any] = field(default_factory=dict)
    messages: list[MessageView] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def _decided(output: dict[str, Any]) -> dict[str, Any]:
    keys = ("data", "changes", "wait", "reason", "interrupted")
    return {key: output[key] for key in keys if output.get(key)}


def _part(output: dict[str, Any], key: str) -> dict[str, Any]:
    value = output.get(key)
    return value if isinstance(value, dict) else {}


def _why(step: Step, index: int, previous: Step | None) -> str:
    woke = (step.output or {}).get("woke")
    if isinstance(woke, dict) and woke.get("reason") in ("timer", "event"):
        return str(woke["reason"])
    if index == 0:
        return "entered"
    return "moved" if previous is not None else "entered"


def _errors(step: Step) -> list[dict[str, Any]]:
    kept = [e for e in (step.output or {}).get("errors") or [] if isinstance(e, dict)]
    if step.error and not any(e.get("error") == step.error for e in kept[-1:]):
        kept.append({"attempt": step.attempts, "at": None, "error": step.error})
    return kept


async def _events(db: AsyncSession, ids: Iterable[int]) -> dict[int, Event]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    return {e.id: e for e in await db.scalars(select(Event).where(Event.id.in_(wanted)))}


def _message_history(
    message: OutboxMessage, delivery: Delivery | None, events: list[Event]
) -> list[HistoryItem]:
    items = [HistoryItem("queued", message.created_at)]
    if message.status in ("deferred", "suppressed"):
        items.append(
            HistoryItem(
                message.status,
                message.next_attempt_at if message.status == "deferred" else None,
                message.status_reason or "",
            )
        )
    if delivery is not None and delivery.accepted_at is not None:
        items.append(
            HistoryItem("accepted", delivery.accepted_at, delivery.provider_message_id or "")
        )
    if message.sent_at is not None:
        items.append(HistoryItem("sent", message.sent_at, message.provider_message_id or ""))
    if message.status == "dead":
        items.append(HistoryItem("failed", None, message.last_error or message.status_reason or ""))
    elif message.status == "pending" and message.attempts and message.last_error:
        items.append(HistoryItem("retrying", message.next_attempt_at, message.last_error))
    for event in events:
        detail = str(event.properties.get("url") or event.properties.get("type") or "")
        items.append(HistoryItem(event.type, event.occurred_at, detail))
    items.sort(key=lambda item: (item.at is None, item.at or message.created_at))
    return items


async def _messages(db: AsyncSession, journey: Journey) -> dict[str, list[MessageView]]:
    """The run's messages by the node that produced them, each with its history."""
    messages = list(
        await db.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.journey_id == journey.id)
            .order_by(OutboxMessage.created_at, OutboxMessage.id)
        )
    )
    if not messages:
        return {}
    deliveries = {
        d.outbox_id: d
        for d in await db.scalars(
            select(Delivery).where(Delivery.outbox_id.in_([m.id for m in messages]))
        )
    }
    tracking: list[Event] = []
    if journey.contact_id is not None:
        tracking = list(
            await db.scalars(
                select(Event)
                .where(
                    Event.contact_id == journey.contact_id,
                    Event.type.in_([*MESSAGE_EVENTS, BOUNCE]),
                    Event.occurred_at >= messages[0].created_at,
                )
                .order_by(Event.occurred_at, Event.id)
                .limit(EVENT_LIMIT)
            )
        )
    by_message: dict[int, list[Event]] = {}
    emails = [m for m in messages if m.channel == "email" and m.sent_at is not None]
    for event in tracking:
        if event.type == BOUNCE:
            # A bounce names the address, not the message: it belongs to the
            # run's last email sent before it.
            earlier = [
                m for m in emails if m.sent_at is not None and m.sent_at <= event.occurred_at
            ]
            if earlier:
                by_message.setdefault(earlier[-1].id, []).append(event)
            continue
        owner = event.properties.get("message_id")
        if isinstance(owner, int):
            by_message.setdefault(owner, []).append(event)
    out: dict[str, list[MessageView]] = {}
    for message in messages:
        history = _message_history(
            message, deliveries.get(message.id), by_message.get(message.id, [])
        )
        out.setdefault(message.node_id or "", []).append(MessageView(message, history))
    return out


async def run_story(db: AsyncSession, journey: Journey, labels: dict[str, str]) -> list[StepView]:
    """The run's steps in order, each with everything an auditor asks about it."""
    steps = list(
        await db.scalars(
            select(Step).where(Step.journey_id == journey.id).order_by(Step.started_at, Step.id)
        )
    )
    wake_ids = [int(_part(s.output or {}, "woke").get("event_id") or 0) for s in steps]
    trigger = (journey.data or {}).get("trigger")
    trigger_id = trigger.get("event_id") if isinstance(trigger, dict) else None
    events = await _events(db, [*wake_ids, trigger_id or 0])
    messages = await _messages(db, journey)
    views: list[StepView] = []
    previous: Step | None = None
    for index, step in enumerate(steps):
        output = step.output or {}
        woke: dict[str, Any] = _part(output, "woke")
        seen: dict[str, Any] = _part(output, "seen")
        view = StepView(
            step=step,
            label=labels.get(step.node_id, ""),
            why=_why(step, index, previous),
            wake_event=events.get(int(woke.get("event_id") or 0)),
            came_from=labels.get(previous.node_id, previous.node_id) if previous else "",
            seen_profile=dict(seen.get("profile") or {}),
            seen_events=list(seen.get("events") or []),
            events_read=int(seen.get("events_read") or 0),
            decided=_decided(output),
            messages=[
                m
                for m in messages.get(step.node_id, [])
                # The step identity leads the message's key (``message_key``).
                if m.message.idempotency_key.startswith(
                    f"j{journey.id}:{step.node_id}:{step.visit}:"
                )
            ],
            errors=_errors(step),
        )
        if view.why == "entered" and isinstance(trigger, dict):
            view.trigger = dict(trigger)
            view.wake_event = events.get(int(trigger_id or 0))
        views.append(view)
        previous = step
    return views
