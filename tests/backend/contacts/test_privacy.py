"""GDPR export and erase."""

from __future__ import annotations

import json

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.contacts.identify import AttributeSchema, identify
from backend.contacts.privacy import erase_contact, export_contact
from backend.contacts.schemas import IdentifyIn
from backend.models import Contact, ContactConsent, Event


async def _contact_with_history(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session, session.begin():
        schema = await AttributeSchema.load(session)
        result = await identify(
            session,
            IdentifyIn(
                email="erik@example.com",
                phone="+46701234567",
                first_name="Erik",
                attributes={"city": "Lund"},
                consent={"email": True},
            ),
            source="form:1",
            schema=schema,
        )
        assert result is not None
        contact_id = result.contact.id
        session.add(
            Event(type="page.viewed", contact_id=contact_id, properties={"url": "/pricing"})
        )
        session.add(
            Event(type="form.submitted", contact_id=contact_id, properties={"name": "Erik"})
        )
    return contact_id


async def test_export_contains_profile_consent_and_events(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    contact_id = await _contact_with_history(sessions)
    async with sessions() as session:
        contact = await session.get(Contact, contact_id)
        assert contact is not None
        data = await export_contact(session, contact)
    json.dumps(data)  # the export is JSON-ready
    assert data["contact"]["email"] == "erik@example.com"
    assert [c["granted"] for c in data["consent_history"]] == [True]
    assert sorted(e["type"] for e in data["events"]) == ["form.submitted", "page.viewed"]


async def test_erase_removes_personal_data_and_keeps_counts(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    contact_id = await _contact_with_history(sessions)
    async with sessions() as session, session.begin():
        contact = await session.get(Contact, contact_id)
        assert contact is not None
        await erase_contact(session, contact)
    async with sessions() as session:
        contact = await session.get(Contact, contact_id)
        assert contact is not None
        events = (await session.scalars(select(Event).where(Event.contact_id == contact_id))).all()
        sources = (await session.scalars(select(ContactConsent.source))).all()
        left = await export_contact(session, contact)
        count = await session.scalar(select(func.count()).select_from(Event))
    assert contact.erased_at is not None
    assert (contact.email, contact.phone, contact.first_name) == (None, None, "")
    assert contact.attributes == {} and contact.consent == {}
    assert count == 2 and all(e.properties == {} for e in events)
    assert sources == ["erased"]
    assert "erik" not in json.dumps(left).lower()
    assert "46701234567" not in json.dumps(left)
