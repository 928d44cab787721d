"""The named-contact statements look contacts up by index, whatever the table's size.

``_QUIET`` (a group of single track calls) and ``_NAMED`` (a small batch) find
each item's contact by external id or email. Written as joins, PostgreSQL
planned them as a hash of the whole contacts table (it takes the JSON rows
for a hundred): a sequential scan per statement that grew with the contacts
and was most of a single track call's time. These tests read the plans, the
first (custom) and the cached one a prepared statement settles on (generic),
with enough contacts for a scan to show, and check the answers the look-up
gives: external id first, else email.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime.engine import Runtime
from runtime.events import _NAMED, _QUIET, NamedEventIn, QuietIngest, _named_rows

CONTACTS = 3000


@pytest.fixture(autouse=True)
def _postgresql_only(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the statements are PostgreSQL's")


@pytest.fixture
async def driver(runtime: Runtime, engine: AsyncEngine) -> AsyncIterator[Any]:
    """asyncpg's connection, outside a transaction, with a contacts table worth an index."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO contacts (email, external_id, first_name, last_name, attributes, "
                "tags, consent, lifecycle_stage, created_at, updated_at) "
                "SELECT 'plan' || g || '@exempel.se', CASE WHEN g % 2 = 0 THEN 'ext' || g END, "
                "'', '', '{}', '[]', '{}', 'lead', now(), now() "
                "FROM generate_series(1, :n) g"
            ),
            {"n": CONTACTS},
        )
        await conn.execute(text("ANALYZE contacts"))
    fairy = await engine.raw_connection()
    try:
        yield fairy.driver_connection
    finally:
        fairy.close()


def _rows(*names: tuple[str | None, str | None]) -> str:
    items = [NamedEventIn(type="page.viewed", external_id=ext, email=email) for ext, email in names]
    return _named_rows(items, datetime.now(UTC))[1]


def _scans(plan: Any) -> set[tuple[str, str]]:
    """Every (node type, relation) of a JSON plan."""
    found: set[tuple[str, str]] = set()
    stack = [plan[0]["Plan"] if isinstance(plan, list) else plan]
    while stack:
        node = stack.pop()
        if "Relation Name" in node:
            found.add((node["Node Type"], node["Relation Name"]))
        stack.extend(node.get("Plans", ()))
    return found


async def _plans(connection: Any, sql: str, *args: Any) -> list[set[tuple[str, str]]]:
    """The statement's scans as first planned (custom) and as a cached plan (generic)."""
    plans = []
    for mode in ("force_custom_plan", "force_generic_plan"):
        await connection.execute(f"SET plan_cache_mode = {mode}")
        plan = await connection.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
        plans.append(_scans(json.loads(plan) if isinstance(plan, str) else plan))
    await connection.execute("RESET plan_cache_mode")
    return plans


async def test_the_quiet_statement_probes_contacts_by_index(driver: Any) -> None:
    rows = _rows(("ext2", None), (None, "plan7@exempel.se"), (None, "plan9@exempel.se"))
    for scans in await _plans(driver, _QUIET, rows, "active", []):
        contacts = {kind for kind, relation in scans if relation == "contacts"}
        assert contacts and "Seq Scan" not in contacts, scans


async def test_the_named_statement_probes_contacts_by_index(driver: Any) -> None:
    # The asyncpg form of ``_NAMED``: its named parameters as $n, in order of appearance.
    sql = str(_NAMED)
    names = ["rows", "external_ids", "emails", "active_flow"]
    for n, name in enumerate(names, 1):
        sql = sql.replace(f":{name}", f"${n}")
    rows = _rows(("ext2", None), (None, "plan7@exempel.se"))
    args = (rows, ["ext2"], ["plan7@exempel.se"], "active")
    for scans in await _plans(driver, sql, *args):
        contacts = {kind for kind, relation in scans if relation == "contacts"}
        assert contacts and "Seq Scan" not in contacts, scans


async def test_the_look_up_takes_the_external_id_first_and_else_the_email(
    runtime: Runtime, driver: Any
) -> None:
    ids = dict(await driver.fetch("SELECT email, id FROM contacts"))
    by_ext = dict(
        await driver.fetch("SELECT external_id, id FROM contacts WHERE external_id <> ''")
    )
    items = [
        # The external id wins over an email of another contact.
        NamedEventIn(type="page.viewed", external_id="ext4", email="plan5@exempel.se"),
        NamedEventIn(type="page.viewed", external_id=None, email="plan5@exempel.se"),
        NamedEventIn(type="page.viewed", external_id="ext6", email=None),
    ]
    stored = await QuietIngest(runtime.versions).store(driver, items, now=datetime.now(UTC))
    assert stored is not None and len(stored) == 3
    contacts = await driver.fetch(
        "SELECT id, contact_id FROM events WHERE id = ANY($1::bigint[])",
        [result.event_id for result in stored],
    )
    by_event = dict(contacts)
    assert [by_event[result.event_id] for result in stored] == [
        by_ext["ext4"],
        ids["plan5@exempel.se"],
        by_ext["ext6"],
    ]
    # An unknown name writes nothing: the caller takes the transaction path.
    unknown = [NamedEventIn(type="page.viewed", external_id="nobody", email=None), items[1]]
    assert await QuietIngest(runtime.versions).store(driver, unknown, now=datetime.now(UTC)) is None
    assert await driver.fetchval("SELECT count(*) FROM events") == 3
