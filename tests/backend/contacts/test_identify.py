"""identify(): upsert by external id or email, typed attributes, consent, clear refusals."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.contacts.identify import AttributeSchema, identify
from backend.contacts.normalize import InvalidValue, normalize_email, normalize_phone
from backend.contacts.schemas import IdentifyIn
from backend.models import AttributeDefinition, Contact, ContactConsent


async def _identify(sessions: async_sessionmaker[AsyncSession], **data: object) -> Contact:
    async with sessions() as session, session.begin():
        schema = await AttributeSchema.load(session)
        result = await identify(session, IdentifyIn(**data), source="test", schema=schema)
        assert result is not None
        return result.contact


async def _count(sessions: async_sessionmaker[AsyncSession], model: type) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def test_email_and_phone_are_normalised() -> None:
    assert normalize_email("  Anna.Svensson@Example.COM ") == "anna.svensson@example.com"
    assert normalize_phone("070-123 45 67") == "+46701234567"
    assert normalize_phone("+1 (415) 555-2671") == "+14155552671"
    with pytest.raises(InvalidValue, match="not a valid email"):
        normalize_email("anna@")
    with pytest.raises(InvalidValue, match="phone number"):
        normalize_phone("12")


async def test_identify_creates_then_updates_the_same_contact(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first = await _identify(
        sessions, email="Anna@Example.com", phone="0701234567", attributes={"city": "Stockholm"}
    )
    second = await _identify(
        sessions, email="anna@example.com", first_name="Anna", attributes={"age": 34}
    )
    assert second.id == first.id
    assert await _count(sessions, Contact) == 1
    async with sessions() as session:
        stored = await session.get(Contact, first.id)
        assert stored is not None
        assert stored.email == "anna@example.com"
        assert stored.phone == "+46701234567"
        assert stored.first_name == "Anna"
        assert stored.attributes == {"city": "Stockholm", "age": 34}


async def test_attribute_types_are_declared_on_first_sight_and_enforced(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _identify(sessions, email="a@example.com", attributes={"age": 30, "vip": True})
    async with sessions() as session:
        types = dict(
            (await session.execute(select(AttributeDefinition.key, AttributeDefinition.type))).all()
        )
    assert types == {"age": "number", "vip": "boolean"}

    with pytest.raises(InvalidValue, match="declared as number"):
        await _identify(sessions, email="b@example.com", attributes={"age": "thirty"})
    # Nothing of the refused contact was written.
    assert await _count(sessions, Contact) == 1

    coerced = await _identify(sessions, email="c@example.com", attributes={"age": "41"})
    assert coerced.attributes["age"] == 41


async def test_identifiers_of_two_different_contacts_are_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _identify(sessions, external_id="crm-1", email="one@example.com")
    await _identify(sessions, external_id="crm-2", email="two@example.com")
    with pytest.raises(InvalidValue, match="two different contacts"):
        await _identify(sessions, external_id="crm-1", email="two@example.com")


async def test_consent_keeps_history_and_current_value(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    contact = await _identify(sessions, email="c@example.com", consent={"email": True})
    await _identify(sessions, email="c@example.com", consent={"email": True})  # no change
    contact = await _identify(sessions, email="c@example.com", consent={"email": False})
    assert contact.consent["email"]["granted"] is False
    assert contact.consent["email"]["source"] == "test"
    async with sessions() as session:
        history = (
            await session.scalars(select(ContactConsent.granted).order_by(ContactConsent.id))
        ).all()
    assert history == [True, False]


def test_identify_needs_an_identifier_and_refuses_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="email or an external_id"):
        IdentifyIn(first_name="Nobody")
    with pytest.raises(ValidationError, match="Extra inputs"):
        IdentifyIn(email="a@example.com", shoe_size=44)  # type: ignore[call-arg]


async def test_unknown_time_zone_is_refused(sessions: async_sessionmaker[AsyncSession]) -> None:
    with pytest.raises(InvalidValue, match="unknown time zone"):
        await _identify(sessions, email="tz@example.com", timezone="Mars/Olympus")
    assert await _count(sessions, Contact) == 0
