"""Claimed events: kept out of a contact's rules and history until a proof verifies them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Contact, Event, Visitor
from backend.personalization.claims import PENDING_PROFILE, verify_claims
from backend.personalization.stitch import stitch
from runtime.profiles import load_recent_events
from runtime.rules import EventCondition
from runtime.rules.sql import count_audience

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
SUBMITTED = EventCondition(event="form.submitted")
BROWSER = "v-claiming-browser-01"


async def _claimed_submission(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Victoria's contact, and a form someone sent for her address from BROWSER."""
    async with sessions() as db, db.begin():
        contact = Contact(email="victoria@example.com", first_name="Victoria")
        db.add_all([contact, Visitor(id=BROWSER, traits={})])
        await db.flush()
        db.add(
            Event(
                type="form.submitted",
                contact_id=contact.id,
                visitor_id=BROWSER,
                properties={
                    "form": "signup",
                    PENDING_PROFILE: {"email": "victoria@example.com", "first_name": "Vicky"},
                },
                source="form:signup",
                occurred_at=NOW - timedelta(minutes=5),
                claimed=True,
            )
        )
        return contact.id


async def _history(db: AsyncSession, contact_id: int) -> list[str]:
    events = await load_recent_events(db, [("contact", str(contact_id))], NOW)
    return [event.type for event in events.get(("contact", str(contact_id)), ())]


async def test_a_claim_counts_nowhere_until_its_browser_is_verified(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    victim = await _claimed_submission(sessions)
    async with sessions() as db:
        assert await count_audience(db, SUBMITTED, now=NOW) == 0
        assert await _history(db, victim) == []
        contact = await db.get(Contact, victim)
        assert contact is not None and contact.first_name == "Victoria"

    async with sessions() as db, db.begin():
        await stitch(db, visitor_id=BROWSER, contact_id=victim, now=NOW)
    async with sessions() as db:
        assert await count_audience(db, SUBMITTED, now=NOW) == 1
        assert await _history(db, victim) == ["form.submitted"]
        contact = await db.get(Contact, victim)
        assert contact is not None and contact.first_name == "Vicky"
        event = await db.get(Event, 1)
        assert event is not None and not event.claimed
        assert PENDING_PROFILE not in event.properties


async def test_verifying_one_submission_leaves_other_browsers_claims(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    victim = await _claimed_submission(sessions)
    async with sessions() as db, db.begin():
        assert await verify_claims(db, victim, visitor_id="v-some-other-browser") == 0
        assert await verify_claims(db, victim, event_id=1) == 1
        assert await verify_claims(db, victim, event_id=1) == 0  # again: nothing to do
    async with sessions() as db:
        assert await count_audience(db, SUBMITTED, now=NOW) == 1
