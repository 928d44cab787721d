"""GDPR: export everything about one contact, and erase their personal data everywhere.

Erasure keeps rows that other numbers depend on (events, journeys, steps,
messages) but strips every personal value from them, so flow counts and
reports stay right while nothing can be traced back to the person.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import (
    LIVE_STATUSES,
    Contact,
    ContactConsent,
    Event,
    Journey,
    JourneyStatus,
    OutboxMessage,
    SlotAssignment,
    Step,
    Visitor,
    utcnow,
)
from backend.models.base import Base
from backend.models.tasks import Task
from backend.personalization.recent import changed_on_commit

ERASED = "erased"


def _row(obj: Base) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for column in obj.__table__.columns:
        value = getattr(obj, column.key)
        data[column.key] = value.isoformat() if hasattr(value, "isoformat") else value
    return data


async def _rows(session: AsyncSession, query: Select[Any]) -> list[dict[str, Any]]:
    return [_row(obj) for obj in (await session.scalars(query)).all()]


async def export_contact(session: AsyncSession, contact: Contact) -> dict[str, Any]:
    """Everything stored about one contact, as JSON-ready data (a GDPR access request)."""
    journeys = select(Journey.id).where(Journey.contact_id == contact.id)
    return {
        "contact": _row(contact),
        "consent_history": await _rows(
            session,
            select(ContactConsent)
            .where(ContactConsent.contact_id == contact.id)
            .order_by(ContactConsent.at),
        ),
        "visitors": await _rows(session, select(Visitor).where(Visitor.contact_id == contact.id)),
        "events": await _rows(
            session,
            select(Event).where(Event.contact_id == contact.id).order_by(Event.occurred_at),
        ),
        "journeys": await _rows(
            session, select(Journey).where(Journey.contact_id == contact.id).order_by(Journey.id)
        ),
        "steps": await _rows(
            session,
            select(Step).where(Step.journey_id.in_(journeys)).order_by(Step.journey_id, Step.id),
        ),
        "messages": await _rows(
            session,
            select(OutboxMessage)
            .where(OutboxMessage.contact_id == contact.id)
            .order_by(OutboxMessage.id),
        ),
        "tasks": await _rows(session, select(Task).where(Task.contact_id == contact.id)),
    }


async def _forget_visitors(session: AsyncSession, contact_id: int, now: datetime) -> None:
    """Unlink and forget the browsers linked to (or claiming) the contact.

    Their rows stay as tombstones (``forgotten_at``) so the snippet is told to
    start over with a new id; their events, journeys and content lose every
    trace that would tie them to a browser.
    """
    mine = or_(Visitor.contact_id == contact_id, Visitor.claimed_contact_id == contact_id)
    visitor_ids = list(await session.scalars(select(Visitor.id).where(mine)))
    await session.execute(
        update(Visitor)
        .where(mine)
        .values(
            contact_id=None,
            claimed_contact_id=None,
            claimed_at=None,
            stitched_at=None,
            traits={},
            forgotten_at=now,
        )
    )
    await session.execute(
        delete(SlotAssignment).where(
            or_(SlotAssignment.contact_id == contact_id, SlotAssignment.visitor_id.in_(visitor_ids))
        )
    )
    await session.execute(
        update(Event).where(Event.contact_id == contact_id).values(visitor_id=None)
    )
    if visitor_ids:
        # Their anonymous history (a claim never verified) is the person's too.
        await session.execute(
            update(Event)
            .where(Event.visitor_id.in_(visitor_ids))
            .values(visitor_id=None, properties={}, dedupe_key=None)
        )
        await session.execute(
            update(Journey)
            .where(
                Journey.visitor_id.in_(visitor_ids),
                Journey.contact_id.is_(None),
                Journey.status.in_(LIVE_STATUSES),
            )
            .values(
                status=JourneyStatus.exited.value,
                exit_reason=ERASED,
                due_at=None,
                wait_event_type=None,
                wait_match=None,
                ended_at=now,
            )
        )
        await session.execute(
            update(Journey).where(Journey.visitor_id.in_(visitor_ids)).values(data={})
        )
    # Snippet decisions cached in this process name the contact and its content.
    changed_on_commit(session, visitor_ids=visitor_ids, contact_ids=[contact_id])


async def erase_contact(session: AsyncSession, contact: Contact) -> None:
    """Remove the person's data everywhere; keep anonymised rows for counts.

    Live journeys exit (nothing more is sent), undelivered messages are
    suppressed, and the contact row keeps only its id and timestamps.
    """
    now = utcnow()
    journeys = select(Journey.id).where(Journey.contact_id == contact.id).scalar_subquery()
    await session.execute(
        update(Journey)
        .where(Journey.contact_id == contact.id, Journey.status.in_(LIVE_STATUSES))
        .values(
            status=JourneyStatus.exited.value,
            exit_reason=ERASED,
            due_at=None,
            wait_event_type=None,
            wait_match=None,
            ended_at=now,
        )
    )
    await session.execute(
        update(Journey).where(Journey.contact_id == contact.id).values(data={}, last_error=None)
    )
    await session.execute(
        update(Step).where(Step.journey_id.in_(journeys)).values(input={}, output={}, error=None)
    )
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.contact_id == contact.id)
        .values(payload={}, last_error=None)
    )
    await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.contact_id == contact.id,
            OutboxMessage.status.in_(("pending", "deferred")),
        )
        .values(status="suppressed", status_reason=ERASED)
    )
    await session.execute(
        update(Event).where(Event.contact_id == contact.id).values(properties={}, dedupe_key=None)
    )
    await _forget_visitors(session, contact.id, now)
    await session.execute(
        update(Task).where(Task.contact_id == contact.id).values(title=ERASED, note="")
    )
    await session.execute(
        update(ContactConsent).where(ContactConsent.contact_id == contact.id).values(source=ERASED)
    )
    contact.external_id = None
    contact.email = None
    contact.phone = None
    contact.first_name = ""
    contact.last_name = ""
    contact.attributes = {}
    contact.tags = []
    contact.timezone = None
    contact.locale = None
    contact.consent = {}
    contact.owner_id = None
    contact.erased_at = now
    await session.flush()
