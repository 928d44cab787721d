"""``POST /api/v1/track`` answered ahead of the middleware (backend/api/fast.py).

The fast path answers only calls that succeed; everything else is handed to
the app. ``/api/v1/track/`` (a trailing slash) reaches the same route through
the whole app, so the two addresses side by side show the answers are the same.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.api.fast import serve_track
from backend.api.ingest import intake_of
from backend.models import Contact, Event, Role
from tests.backend.web.support import add_api_key

Client = AsyncTestClient[Litestar]
FAST, WHOLE = "/api/v1/track", "/api/v1/track/"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _same_answer(fast: Any, whole: Any) -> None:
    assert fast.status_code == whole.status_code, (fast.text, whole.text)
    assert fast.content == whole.content
    assert fast.headers.multi_items() == whole.headers.multi_items()


async def _events(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as db:
        return int(await db.scalar(select(func.count()).select_from(Event)) or 0)


async def test_a_stored_event_is_answered_as_the_route_answers_it(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _key, token = await add_api_key(sessions, Role.marketer)
    body = {"type": "page.viewed", "email": "kund@exempel.se", "idempotency_key": "k-1"}
    first = await client.post(FAST, json=body, headers=_bearer(token))
    assert first.status_code == 202, first.text
    assert first.json() == {"event_id": 1, "duplicate": False, "enrolled": 0, "woken": 0}
    # The same key again, through the fast path and through the app: the same duplicate.
    again = await client.post(FAST, json=body, headers=_bearer(token))
    whole = await client.post(WHOLE, json=body, headers=_bearer(token))
    _same_answer(again, whole)
    assert again.json() == {"event_id": 1, "duplicate": True, "enrolled": 0, "woken": 0}
    assert again.headers["x-content-type-options"] == "nosniff"
    assert await _events(sessions) == 1


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({}, b'{"type": "page.viewed", "email": "kund@exempel.se"}'),  # no key
        ({"Authorization": "Bearer tf_000000000000_wrong"}, b'{"type": "a", "email": "a@b.se"}'),
        (None, b"{not json"),
        (None, b'{"type": "page.viewed"}'),  # whose event?
        (None, b'["type", "page.viewed"]'),
        (None, b'{"type": "page.viewed", "email": "kund@exempel.se", "extra": 1}'),
        (None, b'{"type": "page.viewed", "email": "inte en adress"}'),  # written, then refused
        ({"Accept-Language": "sv"}, b'{"type": "page.viewed", "email": "inte en adress"}'),
        (None, b'{"type": "page.viewed", "contact_id": 999}'),  # no such contact
        (None, b'{"type": "page.viewed", "email": "a@b.se", "properties": {"x": "\\u0000"}}'),
        (
            None,
            b'{"type": "page.viewed", "email": "a@b.se", "properties": {"x": "'
            + b"y" * 300_000
            + b'"}}',
        ),
    ],
)
async def test_refused_calls_get_the_apps_own_answer(
    client: Client,
    sessions: async_sessionmaker[AsyncSession],
    headers: dict[str, str] | None,
    body: bytes,
) -> None:
    _key, token = await add_api_key(sessions, Role.marketer)
    sent = _bearer(token) if headers is None else headers
    if "Accept-Language" in sent:
        sent = {**_bearer(token), **sent}
    sent = {**sent, "Content-Type": "application/json"}
    fast = await client.post(FAST, content=body, headers=sent)
    whole = await client.post(WHOLE, content=body, headers=sent)
    assert fast.status_code >= 400
    _same_answer(fast, whole)
    assert await _events(sessions) == 0


async def test_a_role_too_low_is_refused_as_before(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _key, token = await add_api_key(sessions, Role.viewer)
    body = {"type": "page.viewed", "email": "kund@exempel.se"}
    fast = await client.post(FAST, json=body, headers=_bearer(token))
    whole = await client.post(WHOLE, json=body, headers=_bearer(token))
    assert fast.status_code == 403
    _same_answer(fast, whole)
    assert await _events(sessions) == 0


async def test_a_long_refusal_is_compressed_by_the_app(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _key, token = await add_api_key(sessions, Role.marketer)
    email = "k" * 60 + "@" + "exempel." * 23 + "se"
    async with sessions() as db, db.begin():
        db.add(Contact(email=email, external_id="someone-else"))
    body = {"type": "page.viewed", "email": email, "external_id": "ö" * 200}
    sent = {**_bearer(token), "Accept-Encoding": "gzip"}
    fast = await client.post(FAST, json=body, headers=sent)
    whole = await client.post(WHOLE, json=body, headers=sent)
    assert fast.status_code == 400, fast.text
    assert fast.headers.get("content-encoding") == "gzip"
    _same_answer(fast, whole)
    assert "external_id" in fast.text  # decompressed by the client


async def test_a_failed_write_is_answered_by_the_app_and_not_written_again(
    client: Client, app: Litestar, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _key, token = await add_api_key(sessions, Role.marketer)
    intake = intake_of(app.state)
    intake.transactions = 0
    engine = app.state.sessions.kw["bind"].sync_engine

    def refuse(conn: Any, cursor: Any, statement: str, params: Any, *a: Any) -> None:
        if "INSERT INTO events" in statement:
            raise ConnectionError("the database refused the row")

    event.listen(engine, "before_cursor_execute", refuse)
    try:
        answer = await client.post(
            FAST, json={"type": "page.viewed", "email": "kund@exempel.se"}, headers=_bearer(token)
        )
    finally:
        event.remove(engine, "before_cursor_execute", refuse)
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "internal_error"
    assert intake.transactions == 1  # the app raised the fast path's outcome, no second try
    assert await _events(sessions) == 0


async def test_the_fast_path_hands_over_with_the_body_intact(
    client: Client,  # runs the app's lifespan, which builds its runtime
    app: Litestar,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    _key, token = await add_api_key(sessions, Role.marketer)
    handed: list[bytes] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        handed.append(body)

    async def call(*chunks: bytes) -> list[Any]:
        messages = [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)
        ]
        sent: list[Any] = []

        async def receive() -> Any:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": FAST,
            "headers": [(b"authorization", f"Bearer {token}".encode())],
            "litestar_app": app,
            "state": {},
        }
        await serve_track(app, inner, scope, receive, send)  # type: ignore[arg-type]
        return sent

    # A good call in two chunks is answered here; the app is not asked.
    sent = await call(b'{"type": "page.viewed", ', b'"email": "kund@exempel.se"}')
    assert handed == [] and sent[0]["status"] == 202
    # A bad one goes to the app with every chunk the fast path read.
    sent = await call(b'{"type": "page.viewed", ', b'"email": 5}')
    assert sent == [] and handed == [b'{"type": "page.viewed", "email": 5}']
    await asyncio.sleep(0)


async def test_a_key_that_cannot_be_read_gets_the_apps_error_answer(
    client: Client, app: Litestar, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _key, token = await add_api_key(sessions, Role.marketer)
    engine = app.state.sessions.kw["bind"].sync_engine

    def refuse(conn: Any, cursor: Any, statement: str, params: Any, *a: Any) -> None:
        if "FROM api_keys" in statement:
            raise ConnectionError("the database is away")

    body = {"type": "page.viewed", "email": "kund@exempel.se"}
    event.listen(engine, "before_cursor_execute", refuse)
    try:
        fast = await client.post(FAST, json=body, headers=_bearer(token))
        whole = await client.post(WHOLE, json=body, headers=_bearer(token))
    finally:
        event.remove(engine, "before_cursor_execute", refuse)
    assert fast.status_code == 500
    assert fast.json()["error"]["code"] == "internal_error"
    _same_answer(fast, whole)
    assert await _events(sessions) == 0
