"""GDPR: export everything about one contact, and erase their personal data everywhere.

Erasure keeps rows that other numbers depend on (events, journeys, steps,
messages) but strips every personal value from them, so flow counts and
reports stay right while nothing can be traced back to the person.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import (
    LIVE_STATUSES,
    Contact,
    ContactConsent,
    Event,
    Journey,
    JourneyStatus,
    OutboxMessage,
    Step,
    Visitor,
    utcnow,
)
from backend.models.base import Base
from backend.models.tasks import Task

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
    await session.execute(update(Visitor).where(Visitor.contact_id == contact.id).values(traits={}))
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
