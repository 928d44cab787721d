"""All or nothing for the public writes outside ingestion: pixel, click, unsubscribe,
preferences, double opt-in confirm and the SMS callbacks (status, STOP reply).

Each test makes the request fail after its first write (the next function the
handler calls raises, or the database refuses the statement after the event's
insert), checks that nothing was left behind, then retries and counts the rows:
the retry acts once, and a further retry adds nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.forms import public as public_forms
from backend.models import ContactConsent, Event, Journey, OutboxMessage, Suppression
from backend.web.messaging import tracking
from backend.web.messaging import unsubscribe as unsubscribe_pages
from runtime import flows
from runtime.messaging.channels import link_signer
from tests.backend.messaging.test_public_links import _contact, _send
from tests.backend.web.support import MovableClock
from tests.backend.web.test_forms import answers, make_form

Client = AsyncTestClient[Litestar]
GONE = "the database went away mid-request"


def fail_once(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[str]:
    """Make ``module.name`` raise on its first call only; the list records that it did."""
    original = getattr(module, name)
    failed: list[str] = []

    def failing(*args: Any, **kwargs: Any) -> Any:
        if not failed:
            failed.append(name)
            raise ConnectionError(GONE)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, failing)
    return failed


@contextmanager
def failing_after_the_event_insert(app: Litestar) -> Iterator[list[str]]:
    """The database refuses the first statement after an ``INSERT INTO events``, or the
    commit when none follows (an event for a customer in no journey needs no other)."""
    seen: list[str] = []

    def refuse(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO EVENTS"):
            seen.append("event")
        elif seen == ["event"]:
            seen.append(statement)
            raise ConnectionError(GONE)

    def refuse_commit(conn: Any) -> None:
        if seen == ["event"]:
            seen.append("COMMIT")
            raise ConnectionError(GONE)

    engine = app.state.sessions.kw["bind"].sync_engine
    event.listen(engine, "before_cursor_execute", refuse)
    event.listen(engine, "commit", refuse_commit)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", refuse)
        event.remove(engine, "commit", refuse_commit)


async def _count(sessions: async_sessionmaker[AsyncSession], model: type, *where: Any) -> int:
    async with sessions() as db:
        return int(await db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _path(url: str) -> str:
    return url.removeprefix("http://testserver.local")


async def test_a_pixel_failing_after_the_event_insert_answers_an_error_and_stores_nothing(
    app: Litestar, client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    contact = await _contact(sessions)
    message_id = await _send(app, sessions, contact)
    pixel = _path(link_signer(app.state.settings).open_url(message_id))
    with failing_after_the_event_insert(app) as seen:
        failed = await client.get(pixel)
    assert len(seen) == 2
    # Not a 200: the open was not recorded. Still the invisible image.
    assert failed.status_code == 503 and failed.headers["content-type"] == "image/gif"
    assert await _count(sessions, Event, Event.type == "email.opened") == 0
    for _ in range(2):
        assert (await client.get(pixel)).status_code == 200
    assert await _count(sessions, Event, Event.type == "email.opened") == 1


async def test_a_click_failing_after_the_event_insert_leaves_nothing_and_its_retry_acts_once(
    app: Litestar,
    client: Client,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    contact = await _contact(sessions)
    message_id = await _send(app, sessions, contact)
    click = _path(link_signer(app.state.settings).click_url(message_id, "https://shop.test/guide"))
    failed = fail_once(monkeypatch, tracking, "verifying_link")
    response = await client.get(click, follow_redirects=False)
    assert failed and response.status_code >= 500
    assert await _count(sessions, Event, Event.type == "email.clicked") == 0
    for _ in range(2):
        retried = await client.get(click, follow_redirects=False)
        assert retried.status_code == 302
        assert retried.headers["location"] == "https://shop.test/guide"
    assert await _count(sessions, Event, Event.type == "email.clicked") == 1


async def test_an_unsubscribe_failing_after_its_writes_leaves_nothing_and_its_retry_acts_once(
    app: Litestar,
    client: Client,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    contact = await _contact(sessions)
    message_id = await _send(app, sessions, contact)
    url = _path(link_signer(app.state.settings).unsubscribe_url(message_id, contact, "email"))
    failed = fail_once(monkeypatch, unsubscribe_pages, "_page")
    response = await client.post(url)
    assert failed and response.status_code >= 500
    rows = (ContactConsent, Suppression, Event)
    assert [await _count(sessions, m) for m in rows] == [0, 0, 0]
    for _ in range(2):
        assert (await client.post(url)).status_code == 200
    # One consent change, one suppression, one email.unsubscribed event.
    assert [await _count(sessions, m) for m in rows] == [1, 1, 1]
    assert await _count(sessions, Event, Event.type == "email.unsubscribed") == 1


async def test_a_preference_save_failing_after_its_writes_leaves_nothing_and_retries_once(
    app: Litestar,
    client: Client,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    contact = await _contact(sessions)
    url = _path(link_signer(app.state.settings).preferences_url(contact))
    failed = fail_once(monkeypatch, unsubscribe_pages, "_page")
    response = await client.post(url, data={"email": "1"})  # SMS off, email kept
    assert failed and response.status_code >= 500
    assert [await _count(sessions, m) for m in (ContactConsent, Suppression)] == [0, 0]
    for _ in range(2):
        assert (await client.post(url, data={"email": "1"})).status_code == 200
    assert [await _count(sessions, m) for m in (ContactConsent, Suppression)] == [1, 1]


CONFIRMED = {
    "nodes": [
        {"id": "t", "type": "trigger.event", "config": {"event_type": "form.confirmed"}},
        {"id": "tag", "type": "action.tag", "config": {"add": ["subscriber"]}},
    ],
    "edges": [{"source": "t", "port": "next", "target": "tag"}],
    "settings": {},
}


async def test_a_confirm_failing_after_its_writes_leaves_nothing_and_its_retry_enrolls_once(
    app: Litestar,
    client: Client,
    sessions: async_sessionmaker[AsyncSession],
    clock: MovableClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with sessions() as db, db.begin():
        flow = await flows.create_flow(db, "Welcome", graph=CONFIRMED)
        await flows.publish(db, flow.id, app.state.runtime.registry)
    await make_form(sessions, double_opt_in=True)
    signup = answers(clock, email="asa@example.se", name="Åsa", consent="on")
    posted = await client.post("/f/signup", data=signup)
    assert posted.status_code == 200
    async with sessions() as db:
        [message] = (await db.scalars(select(OutboxMessage))).all()
    token = re.search(r"token=(\S+)", message.payload["text"])
    assert token is not None
    failed = fail_once(monkeypatch, public_forms, "_page")
    response = await client.post("/f/confirm", data={"token": token.group(1)})
    assert failed and response.status_code >= 500
    confirmed = (ContactConsent, Journey)
    assert [await _count(sessions, m) for m in confirmed] == [0, 0]
    assert await _count(sessions, Event, Event.type == "form.confirmed") == 0
    for _ in range(2):
        again = await client.post("/f/confirm", data={"token": token.group(1)})
        assert again.status_code == 200, again.text
    # One consent, one journey (so one welcome email), and still only the opt-in message.
    assert [await _count(sessions, m) for m in confirmed] == [1, 1]
    assert await _count(sessions, Event, Event.type == "form.confirmed") == 1
    assert await _count(sessions, OutboxMessage) == 1


async def test_an_sms_status_failing_after_the_event_insert_leaves_nothing_and_retries_once(
    app: Litestar, client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    app.state.settings.sms_provider = "46elks"
    contact = await _contact(sessions)
    message_id = await _send(app, sessions, contact, category="transactional")
    status = _path(link_signer(app.state.settings).sms_status_url(message_id))
    report = {"id": "abc", "status": "delivered"}
    with failing_after_the_event_insert(app) as seen:
        failed = await client.post(status, data=report)
    assert len(seen) == 2 and failed.status_code >= 500
    assert await _count(sessions, Event, Event.type == "sms.delivered") == 0
    for _ in range(2):
        assert (await client.post(status, data=report)).status_code < 300
    assert await _count(sessions, Event, Event.type == "sms.delivered") == 1


async def test_a_stop_reply_failing_after_the_event_insert_leaves_nothing_and_retries_once(
    app: Litestar, client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    app.state.settings.sms_provider = "46elks"
    await _contact(sessions)
    inbound = f"/hooks/sms/inbound/{link_signer(app.state.settings).sms_inbound_token()}"
    reply = {"id": "sms-1", "from": "0701234567", "to": "+4676", "message": "Stopp"}
    with failing_after_the_event_insert(app) as seen:
        failed = await client.post(inbound, data=reply)
    assert len(seen) == 2 and failed.status_code >= 500
    rows = (Suppression, ContactConsent, Event)
    assert [await _count(sessions, m) for m in rows] == [0, 0, 0]
    for _ in range(2):
        assert (await client.post(inbound, data=reply)).status_code < 300
    assert [await _count(sessions, m) for m in rows] == [1, 1, 1]
