"""SQL and Python evaluators agree on random rules and random customers, on both databases."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Contact, Event
from runtime.profiles import contact_profile, event_record
from runtime.rules import audience_query, evaluate, parse_rule
from tests.runtime.rules.strategies import NOW, TIMEZONES, contacts, events, rules

EXAMPLES = int(os.environ.get("RULE_EXAMPLES", "60"))


async def _load(session: AsyncSession, people: list[dict[str, Any]], facts: list[dict[str, Any]]):
    await session.execute(delete(Event))
    await session.execute(delete(Contact))
    seen: set[str] = set()
    for person in people:  # emails are unique in the table
        if person["email"] is not None and person["email"].lower() in seen:
            person["email"] = None
        elif person["email"] is not None:
            seen.add(person["email"].lower())
    ids = list((await session.execute(insert(Contact).returning(Contact.id), people)).scalars())
    if facts:
        rows = [
            {
                "type": fact["type"],
                "contact_id": ids[n % len(ids)],
                "properties": fact["properties"],
                "occurred_at": NOW - timedelta(days=fact["ago"]),
            }
            for n, fact in enumerate(facts)
        ]
        await session.execute(insert(Event), rows)


async def _read_back(session: AsyncSession) -> list[tuple[int, Any, list[Any]]]:
    """Each stored customer as the Python evaluator sees it: id, profile, event history.

    Read from the database (not from what was inserted), once per example: the
    rules of one example all run against the same rows.
    """
    history: dict[int, list[Any]] = {}
    for row in await session.execute(select(Event.__table__).order_by(Event.id)):
        history.setdefault(row.contact_id, []).append(event_record(row))
    return [
        (row.id, contact_profile(row), history.get(row.id, []))
        for row in await session.execute(select(Contact.__table__))
    ]


def _python_matches(stored: list[tuple[int, Any, list[Any]]], rule: Any, timezone: str) -> set[int]:
    return {
        contact_id
        for contact_id, profile, history in stored
        if evaluate(rule, profile, history, now=NOW, timezone=timezone)
    }


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    people=st.lists(contacts(), min_size=1, max_size=8),
    facts=st.lists(events(), max_size=16),
    raw_rules=st.lists(rules(), min_size=1, max_size=4),
    timezone=st.sampled_from(TIMEZONES),
)
async def test_sql_and_python_agree(
    sessions: async_sessionmaker[AsyncSession],
    people: list[dict[str, Any]],
    facts: list[dict[str, Any]],
    raw_rules: list[dict[str, Any]],
    timezone: str,
) -> None:
    async with sessions() as session, session.begin():
        await _load(session, people, facts)
        dialect = session.get_bind().dialect.name
        stored = await _read_back(session)
        for raw in raw_rules:
            rule = parse_rule(raw)
            query = audience_query(rule, dialect=dialect, now=NOW, timezone=timezone)
            in_sql = set((await session.execute(query)).scalars())
            in_python = _python_matches(stored, rule, timezone)
            assert in_sql == in_python, raw
            event("some match" if in_sql else "no match")
        await session.rollback()
