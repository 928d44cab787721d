"""Text comparisons ignore case in any alphabet, the same in Python and in both databases."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Contact
from runtime.profiles import contact_profile
from runtime.rules import audience_query, evaluate, fold, parse_rule
from tests.runtime.rules.strategies import NOW

CASES = [
    ({"attribute": "city", "type": "string", "op": "equals", "value": "MALMÖ"}, "malmö", True),
    ({"attribute": "city", "type": "string", "op": "equals", "value": "malmo"}, "Malmö", False),
    (
        {"attribute": "city", "type": "string", "op": "in", "value": ["Göteborg", "ÅRE"]},
        "åre",
        True,
    ),
    (
        {"attribute": "city", "type": "string", "op": "starts_with", "value": "ängel"},
        "ÄNGELHOLM",
        True,
    ),
    (
        {"attribute": "city", "type": "string", "op": "contains", "value": "ÜBER"},
        "Müllerüber",
        True,
    ),
    # str.lower, not casefold: "ß" never equals "ss".
    ({"attribute": "city", "type": "string", "op": "equals", "value": "STRASSE"}, "straße", False),
    ({"attribute": "city", "type": "string", "op": "equals", "value": "ẞ"}, "ß", True),
    # Wildcards in the value are literal, after folding too.
    ({"attribute": "city", "type": "string", "op": "contains", "value": "Ö%"}, "xöyz", False),
    ({"attribute": "city", "type": "string", "op": "contains", "value": "Ö%"}, "xö%z", True),
    ({"field": "first_name", "op": "equals", "value": "ÅSA"}, "Åsa", True),
    ({"field": "tags", "op": "contains", "value": "KUND-ÖST"}, "kund-öst", True),
]


def _contact(rule: dict[str, Any], stored: str) -> dict[str, Any]:
    row: dict[str, Any] = {"first_name": "", "tags": [], "attributes": {}}
    if rule.get("field") == "first_name":
        row["first_name"] = stored
    elif rule.get("field") == "tags":
        row["tags"] = [stored]
    else:
        row["attributes"] = {"city": stored}
    return row


def test_fold_is_unicode_lowercase_not_casefold() -> None:
    assert fold("ÅSA Malmö ÜBER") == "åsa malmö über"
    assert fold("STRASSE") != fold("Straße")


@pytest.mark.parametrize(("raw", "stored", "expected"), CASES)
async def test_python_and_sql_fold_alike(
    sessions: async_sessionmaker[AsyncSession], raw: dict[str, Any], stored: str, expected: bool
) -> None:
    rule = parse_rule(raw)
    session: AsyncSession
    async with sessions() as session, session.begin():
        await session.execute(insert(Contact), [_contact(raw, stored)])
        dialect = session.get_bind().dialect.name
        in_sql = set(
            (await session.execute(audience_query(rule, dialect=dialect, now=NOW))).scalars()
        )
        row = (await session.execute(select(Contact.__table__))).one()
        in_python = evaluate(rule, contact_profile(row), now=NOW)
        await session.rollback()
    assert in_python is expected
    assert in_sql == ({row.id} if expected else set())
