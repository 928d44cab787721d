"""Single track calls share transactions (group commit), and API keys are not re-read per call.

Calls that arrive together are written in one transaction and each caller
is answered after that commit; a bad item, or an item the database refuses,
fails alone while the others are stored.
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.api.ingest import intake_of
from backend.auth.middleware import ApiKeyCache
from backend.contacts.intake import TrackIntake
from backend.contacts.normalize import InvalidValue
from backend.contacts.schemas import TrackIn
from backend.models import ApiKey, Contact, Event, Role
from runtime.events import IngestResult
from tests.backend.web.support import add_api_key
from tests.backend.web.test_api import _bearer

Client = AsyncTestClient[Litestar]


def _intake(app: Litestar, sessions: async_sessionmaker[AsyncSession]) -> TrackIntake:
    """An intake like the app's, on the test's own engine (the app's runs in the client's loop)."""
    return TrackIntake(sessions, app.state.runtime)


def _item(n: int, **extra: Any) -> TrackIn:
    return TrackIn.model_validate(
        {"type": "page.viewed", "email": f"kund{n}@exempel.se", "properties": {"n": n}, **extra}
    )


async def _events(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, int]]:
    async with sessions() as db:
        rows = await db.execute(
            select(Contact.email, Event.properties).join(Contact, Event.contact_id == Contact.id)
        )
        return sorted((email, props["n"]) for email, props in rows)


async def _commits(intake: TrackIntake, calls: Any) -> tuple[list[Any], int]:
    """Run ``calls`` side by side; their outcomes and how many transactions committed."""
    committed: list[int] = []
    engine = intake.sessions.kw["bind"].sync_engine

    def count(_conn: Any) -> None:
        committed.append(1)

    event.listen(engine, "commit", count)
    try:
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
    finally:
        event.remove(engine, "commit", count)
    return list(outcomes), len(committed)


async def test_calls_arriving_together_share_one_transaction(
    client: Client,  # runs the app's lifespan, which builds its runtime
    app: Litestar,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    intake = _intake(app, sessions)
    calls = [intake.track(_item(n), source="api:shop") for n in range(10)]
    outcomes, commits = await _commits(intake, calls)
    assert all(isinstance(o, IngestResult) and not o.duplicate for o in outcomes), outcomes
    assert (intake.transactions, commits) == (1, 1)
    assert await _events(sessions) == [(f"kund{n}@exempel.se", n) for n in range(10)]
    # Each caller got its own event back.
    async with sessions() as db:
        ids = dict((await db.execute(select(Event.id, Event.properties["n"].as_integer()))).all())
    assert [ids[o.event_id] for o in outcomes] == list(range(10))


async def test_a_bad_item_in_a_shared_transaction_fails_alone(
    client: Client,  # runs the app's lifespan, which builds its runtime
    app: Litestar,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    intake = _intake(app, sessions)
    bad = TrackIn.model_validate({"type": "page.viewed", "email": "inte en adress"})
    calls = [intake.track(item, source="api:shop") for item in (_item(1), bad, _item(2))]
    outcomes, commits = await _commits(intake, calls)
    assert isinstance(outcomes[1], InvalidValue) and outcomes[1].field == "email"
    assert isinstance(outcomes[0], IngestResult) and isinstance(outcomes[2], IngestResult)
    assert (intake.transactions, commits) == (1, 1)
    assert await _events(sessions) == [("kund1@exempel.se", 1), ("kund2@exempel.se", 2)]


async def test_an_item_the_database_refuses_fails_alone_and_the_others_are_stored(
    client: Client,  # runs the app's lifespan, which builds its runtime
    app: Litestar,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    intake = _intake(app, sessions)
    engine = intake.sessions.kw["bind"].sync_engine

    def refuse_the_poisoned(conn: Any, cursor: Any, statement: str, params: Any, *a: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO EVENTS") and "poisoned" in str(
            params
        ):
            raise ConnectionError("the database refused the row")

    items = [_item(1), _item(2, properties={"n": 2, "märke": "poisoned"}), _item(3)]
    event.listen(engine, "before_cursor_execute", refuse_the_poisoned)
    try:
        outcomes, commits = await _commits(
            intake, [intake.track(item, source="api:shop") for item in items]
        )
    finally:
        event.remove(engine, "before_cursor_execute", refuse_the_poisoned)
    assert isinstance(outcomes[1], Exception) and "refused" in str(outcomes[1])
    assert isinstance(outcomes[0], IngestResult) and isinstance(outcomes[2], IngestResult)
    # The shared transaction rolled back; then each item went alone.
    assert (intake.transactions, commits) == (4, 2)
    assert await _events(sessions) == [("kund1@exempel.se", 1), ("kund3@exempel.se", 3)]
    assert await _count(sessions, Contact) == 2  # the refused item's new contact rolled back too


async def _count(sessions: async_sessionmaker[AsyncSession], model: type) -> int:
    async with sessions() as db:
        return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def test_single_track_answers_through_the_shared_path(
    client: Client, app: Litestar, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _key, token = await add_api_key(sessions, Role.marketer)
    intake = intake_of(app.state)
    intake.transactions = 0
    answers = [
        await client.post(
            "/api/v1/track",
            json={"type": "page.viewed", "email": f"kund{n}@exempel.se", "properties": {"n": n}},
            headers=_bearer(token),
        )
        for n in range(3)
    ]
    assert [a.status_code for a in answers] == [202] * 3, [a.text for a in answers]
    assert intake.transactions == 3
    assert await _events(sessions) == [(f"kund{n}@exempel.se", n) for n in range(3)]
    refused = await client.post(
        "/api/v1/track", json={"type": "page.viewed", "email": "inte"}, headers=_bearer(token)
    )
    assert refused.status_code == 400 and "email" in refused.text


async def test_a_trusted_key_is_read_once_and_its_revocation_counts_at_once(
    client: Client, app: Litestar, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # A window longer than the test, so the count does not depend on its speed.
    app.state.api_keys = ApiKeyCache(trust_seconds=3600)
    key, token = await add_api_key(sessions, Role.viewer)
    reads: list[str] = []
    engine = app.state.sessions.kw["bind"].sync_engine

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM api_keys" in statement:
            reads.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        answers = [await client.get("/api/v1/me", headers=_bearer(token)) for _ in range(5)]
        wrong = await client.get("/api/v1/me", headers=_bearer(token[:-2] + "xx"))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert [a.status_code for a in answers] == [200] * 5
    assert wrong.status_code == 401  # a different token is never taken for a trusted one
    assert len(reads) == 2  # the trusted key once, the wrong token once
    app.state.api_keys.clear()  # what the revoke page does after its commit
    async with sessions() as db, db.begin():
        stored = await db.get(ApiKey, key.id)
        assert stored is not None
        stored.revoked_at = stored.created_at
    assert (await client.get("/api/v1/me", headers=_bearer(token))).status_code == 401
