"""The audit log page: filters by who, what, subject and date; CSV export; entries are immutable."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.audit import record
from backend.auth.principal import Principal
from backend.models import AuditEntry, Role
from tests.backend.web.conftest import SignedIn

ANNA = Principal(kind="user", id=41, label="anna@byrån.se", name="Anna", role=Role.admin)
SHOP = Principal(kind="api_key", id=7, label="webbshop", name="webbshop", role=Role.marketer)


async def _seed(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Four entries; 1 March 23:30 UTC is already 2 March in Stockholm."""
    async with sessions() as db, db.begin():
        record(
            db,
            ANNA,
            "flow.published",
            ("flows", 12),
            {"version": 3},
            at=datetime(2026, 2, 27, 9, 0, tzinfo=UTC),
        )
        record(
            db,
            ANNA,
            "user.created",
            ("users", 5),
            {"email": "=cmd|' /C calc'!A0"},
            at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        )
        record(
            db,
            SHOP,
            "contact.erased",
            ("contacts", 99),
            at=datetime(2026, 3, 1, 23, 30, tzinfo=UTC),
        )
        record(
            db,
            None,
            "flow.paused",
            ("flows", 13),
            {"note": "Höstkampanj pausad"},
            at=datetime(2026, 3, 5, 8, 0, tzinfo=UTC),
        )


async def _shown(client: AsyncTestClient[Litestar], query: str) -> list[str]:
    """The actions on the page for ``query``, in page order (newest first)."""
    response = await client.get(f"/settings/audit?{query}", headers={"HX-Request": "true"})
    assert response.status_code == 200, response.text
    seeded = ("flow.published", "user.created", "contact.erased", "flow.paused")
    html = response.text
    return sorted((a for a in seeded if f"<code>{a}</code>" in html), key=lambda a: html.index(a))


async def test_filters_by_who_what_subject_and_day(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.admin)
    await _seed(sessions)
    everything = ["flow.paused", "contact.erased", "user.created", "flow.published"]
    assert await _shown(client, "") == everything
    assert await _shown(client, "who=ANNA@byrån") == ["user.created", "flow.published"]
    assert await _shown(client, "who=7") == ["contact.erased"]
    assert await _shown(client, "actor_type=system") == ["flow.paused"]
    assert await _shown(client, "action=flow.") == ["flow.paused", "flow.published"]
    assert await _shown(client, "subject_type=flows&subject_id=12") == ["flow.published"]
    # Days are the reader's (Europe/Stockholm): 23:30 UTC on 1 March is 2 March there.
    assert await _shown(client, "date_from=2026-03-02") == ["flow.paused", "contact.erased"]
    assert await _shown(client, "date_from=2026-03-01&date_to=2026-03-01") == ["user.created"]
    assert await _shown(client, "who=anna&date_to=2026-02-28") == ["flow.published"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("date_from=1%20mars", "Type the date as year-month-day, like 2026-03-01."),
        ("date_from=2026-03-05&date_to=2026-03-01", "The first day comes after the last day."),
        ("actor_type=robot", "Choose a person, an API key or the system."),
    ],
)
async def test_a_filter_that_cannot_be_read_is_a_400_that_says_why(
    signed_in: SignedIn, query: str, message: str
) -> None:
    client = await signed_in(Role.admin)
    response = await client.get(f"/settings/audit?{query}")
    assert response.status_code == 400
    assert message in response.text


async def test_csv_export_follows_the_filter_and_is_audited(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.admin)
    await _seed(sessions)
    page = (await client.get("/settings/audit?who=anna")).text
    assert 'href="/settings/audit/export.csv?who=anna"' in page
    response = await client.get("/settings/audit/export.csv?who=anna")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:5] == ["at", "actor_type", "actor_id", "actor", "action"]
    assert [(r[3], r[4], r[5], r[6]) for r in rows[1:]] == [
        ("anna@byrån.se", "flow.published", "flows", "12"),
        ("anna@byrån.se", "user.created", "users", "5"),
    ]
    assert rows[1][0] == "2026-02-27T09:00:00+00:00"
    # Details are JSON; a formula someone typed stays text in a spreadsheet.
    assert json.loads(rows[1][7]) == {"version": 3}
    assert rows[2][7].startswith("{") and "=cmd" in rows[2][7]
    async with sessions() as db:
        exported = await db.scalar(select(AuditEntry).where(AuditEntry.action == "audit.exported"))
    assert exported is not None and exported.details == {"who": "anna"}


async def test_only_admins_read_the_log(signed_in: SignedIn) -> None:
    client = await signed_in(Role.marketer)
    assert (await client.get("/settings/audit")).status_code == 403
    assert (await client.get("/settings/audit/export.csv")).status_code == 403


async def test_the_database_refuses_to_change_or_delete_an_entry(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _seed(sessions)
    attempts = [
        update(AuditEntry).values(action="nothing.happened"),
        update(AuditEntry).where(AuditEntry.action == "contact.erased").values(details={}),
        delete(AuditEntry),
        delete(AuditEntry).where(AuditEntry.actor_type == "system"),
    ]
    if engine.dialect.name == "postgresql":
        attempts.append(text("TRUNCATE audit_log"))
    for statement in attempts:
        async with sessions() as db:
            with pytest.raises(DBAPIError, match="append-only"):
                await db.execute(statement)
            await db.rollback()
    async with sessions() as db:
        entries = list(await db.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert [e.action for e in entries] == [
        "flow.published",
        "user.created",
        "contact.erased",
        "flow.paused",
    ]
    assert entries[2].details == {}  # as written; the refused update changed nothing
    # Adding entries still works: the log is append-only, not read-only.
    async with sessions() as db, db.begin():
        record(db, None, "flow.resumed", ("flows", 13))
