"""identify_many: the chunked fast path gives the same result as identify row by row."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.contacts.bulk import identify_many
from backend.contacts.identify import AttributeSchema, Identified, identify
from backend.contacts.normalize import InvalidValue
from backend.contacts.schemas import IdentifyIn
from backend.models import Contact, ContactConsent
from backend.models.ingestion import AttributeDefinition
from tests.support.stores import truncate_all

ROWS: list[dict[str, Any]] = [
    {"email": "anna@example.com", "first_name": "Anna", "attributes": {"age": 30}},
    {"email": "bad-email"},
    {"external_id": "c-1", "email": "bo@example.com", "first_name": "Bo"},
    {"email": "ANNA@example.com", "first_name": "Anna-Karin"},  # same person again
    {"email": "cia@example.com", "attributes": {"shoe": 38}},  # undeclared attribute
    {"email": "dan@example.com", "attributes": {"age": "old"}},  # wrong type
    {"external_id": "c-2", "email": "old@example.com"},  # two different people
    {"email": "eva@example.com", "consent": {"email": True}, "phone": "0701234567"},
]


async def _seed(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as db, db.begin():
        db.add(AttributeDefinition(key="age", type="number"))
        db.add_all(
            [
                Contact(external_id="c-2", email="two@example.com", attributes={}, tags=[]),
                Contact(email="old@example.com", attributes={}, tags=[]),
            ]
        )


def _summary(outcome: Identified | InvalidValue | None) -> Any:
    if isinstance(outcome, InvalidValue):
        return ("refused", outcome.field)
    if outcome is None:
        return None
    return ("ok", outcome.contact.email, outcome.created)


async def _state(sessions: async_sessionmaker[AsyncSession]) -> list[Any]:
    async with sessions() as db:
        contacts = (await db.scalars(select(Contact).order_by(Contact.email))).all()
        consents = (await db.scalars(select(ContactConsent.channel))).all()
    people = [
        (
            c.email,
            c.external_id,
            c.first_name,
            c.phone,
            c.attributes,
            c.consent.get("email", {}).get("granted"),
        )
        for c in contacts
    ]
    return [people, sorted(consents)]


async def _one_by_one(db: AsyncSession, items: list[IdentifyIn], **mode: bool) -> list[Any]:
    schema = await AttributeSchema.load(db)
    out: list[Any] = []
    for item in items:
        try:
            out.append(_summary(await identify(db, item, source="t", schema=schema, **mode)))
        except InvalidValue as exc:
            out.append(_summary(exc))
    return out


async def test_same_outcome_and_state_as_row_by_row(
    sessions: async_sessionmaker[AsyncSession], engine: Any
) -> None:
    items = [IdentifyIn.model_validate(r) for r in ROWS]
    for mode in ({}, {"create": False}, {"update": False}):
        await truncate_all(engine)
        await _seed(sessions)
        async with sessions() as db, db.begin():
            expected = await _one_by_one(db, items, **mode)
        expected_state = await _state(sessions)

        await truncate_all(engine)
        await _seed(sessions)
        async with sessions() as db, db.begin():
            schema = await AttributeSchema.load(db)
            got = [
                _summary(o)
                for o in await identify_many(db, items, source="t", schema=schema, **mode)
            ]
        assert got == expected, mode
        assert await _state(sessions) == expected_state, mode
    assert expected[1] == ("refused", "email")


async def test_a_chunk_of_new_and_known_people_is_written_without_a_savepoint(
    sessions: async_sessionmaker[AsyncSession], engine: Any
) -> None:
    await _seed(sessions)
    rows = [{"email": f"ny{n}@exempel.se", "first_name": f"Åsa {n}"} for n in range(20)]
    rows += [
        {"email": "old@example.com", "first_name": "Örjan", "consent": {"email": True}},
        {"external_id": "c-2", "last_name": "Ström", "attributes": {"age": 41}},
    ]
    items = [IdentifyIn.model_validate(r) for r in rows]
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.lstrip().split()[0].upper())

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        async with sessions() as db, db.begin():
            schema = await AttributeSchema.load(db)
            outcomes = await identify_many(db, items, source="t", schema=schema)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert [_summary(o) for o in outcomes][-3:] == [
        ("ok", "ny19@exempel.se", True),
        ("ok", "old@example.com", False),
        ("ok", "two@example.com", False),
    ]
    assert "SAVEPOINT" not in statements, statements
    # Known and new people alike in a handful of statements, not a few per row.
    assert len(statements) <= 10, statements
    async with sessions() as db:
        old = await db.scalar(select(Contact).where(Contact.email == "old@example.com"))
        two = await db.scalar(select(Contact).where(Contact.external_id == "c-2"))
        created = await db.scalar(select(Contact).where(Contact.email == "ny7@exempel.se"))
    assert old is not None and old.first_name == "Örjan" and old.consent["email"]["granted"]
    assert two is not None and two.last_name == "Ström" and two.attributes == {"age": 41}
    assert created is not None and created.first_name == "Åsa 7"
