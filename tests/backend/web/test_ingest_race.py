"""Public writes under concurrency and faults: never a 500 for a race, nothing half-done.

Two requests creating the same new person at once both succeed and make one
contact (``INSERT ... ON CONFLICT DO NOTHING``, not a read then an insert);
a request that fails after its event was written leaves nothing behind, and
its retry acts once.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.contacts.bulk import lock_key
from backend.models import Contact, Event, Journey, Role, Visitor
from runtime import flows
from tests.backend.web.support import MovableClock, add_api_key
from tests.backend.web.test_forms import answers, make_form

Client = AsyncTestClient[Litestar]
CONCURRENT = 8


@pytest.fixture
async def served(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """The app behind a real HTTP server on loopback: the test client runs requests one at a
    time, a server runs them side by side, as a site's visitors do."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    limits = httpx.Limits(max_connections=CONCURRENT * 4)
    # A request that loses a deadlock waits out PostgreSQL's detection (a second) and runs
    # again; on a busy machine that is more than httpx's 5 s default, without anything wrong.
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60
    ) as http:
        yield http
    server.should_exit = True
    await task


async def _auth(sessions: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    _, token = await add_api_key(sessions, Role.marketer)
    return {"Authorization": f"Bearer {token}"}


async def _count(sessions: async_sessionmaker[AsyncSession], model: type) -> int:
    async with sessions() as db:
        return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def test_the_same_new_address_posted_to_a_form_at_once_is_one_contact(
    served: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    clock: MovableClock,
) -> None:
    await make_form(sessions)
    posts = [
        served.post("/f/signup", data=answers(clock, email="Åsa@Example.se", name=f"Åsa {i}"))
        for i in range(CONCURRENT)
    ]
    responses = await asyncio.gather(*posts)
    assert [r.status_code for r in responses] == [200] * CONCURRENT, [
        r.text[:300] for r in responses if r.status_code != 200
    ]
    assert await _count(sessions, Contact) == 1
    assert await _count(sessions, Event) == CONCURRENT


async def test_the_same_new_address_tracked_at_once_is_one_contact(
    served: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    auth = await _auth(sessions)
    posts = [
        served.post(
            "/api/v1/track",
            json={"type": "page.viewed", "email": "Örjan@Example.se", "properties": {"n": i}},
            headers=auth,
        )
        for i in range(CONCURRENT)
    ]
    responses = await asyncio.gather(*posts)
    assert [r.status_code for r in responses] == [202] * CONCURRENT, [r.text for r in responses]
    assert await _count(sessions, Contact) == 1
    assert await _count(sessions, Event) == CONCURRENT


async def test_the_same_new_address_identified_at_once_is_created_once(
    served: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    auth = await _auth(sessions)
    posts = [
        served.post(
            "/api/v1/identify",
            json={"email": "Märta@Example.se", "first_name": f"Märta {i}"},
            headers=auth,
        )
        for i in range(CONCURRENT)
    ]
    responses = await asyncio.gather(*posts)
    assert [r.status_code for r in responses] == [200] * CONCURRENT, [r.text for r in responses]
    assert sorted(r.json()["created"] for r in responses) == [False] * (CONCURRENT - 1) + [True]
    assert len({r.json()["contact_id"] for r in responses}) == 1
    assert await _count(sessions, Contact) == 1


async def test_batches_racing_on_the_same_new_people_make_each_once(
    served: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    auth = await _auth(sessions)
    items = [{"type": "page.viewed", "email": f"p{i}@example.se"} for i in range(50)]
    posts = [
        served.post("/api/v1/batch/track", json={"items": items[::step]}, headers=auth)
        for step in (1, 1, 2, -1)
    ]
    responses = await asyncio.gather(*posts)
    assert [r.status_code for r in responses] == [202] * 4, [r.text for r in responses]
    assert all(r.json()["rejected"] == 0 for r in responses)
    assert await _count(sessions, Contact) == 50


async def test_identify_batches_racing_on_the_same_new_people_make_each_once(
    served: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    auth = await _auth(sessions)
    items = [{"email": f"p{i}@example.se", "first_name": f"Åke {i}"} for i in range(50)]
    posts = [
        served.post("/api/v1/batch/identify", json={"items": items[::step]}, headers=auth)
        for step in (1, 1, 2, 3)
    ]
    responses = await asyncio.gather(*posts)
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    assert all(r.json()["rejected"] == 0 for r in responses)
    assert sum(item["result"]["created"] for r in responses for item in r.json()["results"]) == 50
    assert await _count(sessions, Contact) == 50


async def test_identify_batches_naming_the_same_people_in_opposite_orders_all_succeed(
    served: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Each loser of the create race updates the people one by one: in its own item order,
    two such batches took the same row locks in opposite orders and PostgreSQL killed one."""
    auth = await _auth(sessions)
    people = 40
    for round_ in range(4):
        items: list[dict[str, Any]] = [
            {"email": f"p{i}@example.se", "first_name": f"Åke {round_}", "attributes": {"n": i}}
            for i in range(people)
        ]
        # A second row for someone follows the first: its later value is the one kept.
        items.append({"email": "p0@example.se", "last_name": f"Öst {round_}"})
        batches = [items, items[::-1], items, items[::-1]]
        responses = await asyncio.gather(
            *(
                served.post("/api/v1/batch/identify", json={"items": batch}, headers=auth)
                for batch in batches
            )
        )
        assert [r.status_code for r in responses] == [200] * len(batches), [
            r.text[:300] for r in responses if r.status_code != 200
        ]
        assert all(r.json()["rejected"] == 0 for r in responses)
        created = sum(item["result"]["created"] for r in responses for item in r.json()["results"])
        assert created == (people if round_ == 0 else 0)
        async with sessions() as db:
            contacts = list(await db.scalars(select(Contact)))
        assert len(contacts) == people
        assert {c.first_name for c in contacts} == {f"Åke {round_}"}
        assert {c.attributes["n"] for c in contacts} == set(range(people))


async def test_identify_batches_declaring_the_same_attributes_in_opposite_orders_all_succeed(
    served: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Different people, so no lock on a person orders them: the new attributes are declared
    in opposite orders, PostgreSQL breaks the cycle, and the chosen request does it again."""
    auth = await _auth(sessions)
    keys = 12
    for round_ in range(4):
        names = [f"r{round_}_k{i}" for i in range(keys)]
        batches = [
            [
                {"email": f"{who}{round_}.{i}@example.se", "attributes": {name: i}}
                for i, name in enumerate(order)
            ]
            for who, order in (("a", names), ("b", names[::-1]), ("c", names))
        ]
        responses = await asyncio.gather(
            *(
                served.post("/api/v1/batch/identify", json={"items": batch}, headers=auth)
                for batch in batches
            )
        )
        assert [r.status_code for r in responses] == [200] * len(batches), [
            r.text[:300] for r in responses if r.status_code != 200
        ]
        assert all(r.json()["accepted"] == keys for r in responses)
    async with sessions() as db:
        contacts = list(await db.scalars(select(Contact)))
    assert len(contacts) == 4 * 3 * keys
    assert all(len(c.attributes) == 1 for c in contacts)


async def test_identify_batches_naming_one_contact_by_other_keys_all_succeed(
    served: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """One batch names the people by external id, the other by email: no common name, but the
    same rows, locked by id before either batch writes."""
    auth = await _auth(sessions)
    people = 10
    async with sessions() as db, db.begin():
        db.add_all(
            Contact(external_id=f"crm-{i}", email=f"p{i}@example.se", attributes={}, tags=[])
            for i in range(people)
        )
    for round_ in range(3):
        # A new attribute per row sends each row through ``identify`` at once, in item order.
        by_id = [
            {"external_id": f"crm-{i}", "attributes": {f"a{round_}_{i}": i}} for i in range(people)
        ]
        by_email = [
            {"email": f"p{i}@example.se", "attributes": {f"b{round_}_{i}": i}}
            for i in reversed(range(people))
        ]
        responses = await asyncio.gather(
            *(
                served.post("/api/v1/batch/identify", json={"items": batch}, headers=auth)
                for batch in (by_id, by_email)
            )
        )
        assert [r.status_code for r in responses] == [200, 200], [
            r.text[:300] for r in responses if r.status_code != 200
        ]
        assert all(r.json()["accepted"] == people for r in responses)
    async with sessions() as db:
        contacts = {c.external_id: c for c in await db.scalars(select(Contact))}
    assert len(contacts) == people
    for i in range(people):
        assert contacts[f"crm-{i}"].attributes == {
            f"{side}{r}_{i}": i for side in "ab" for r in range(3)
        }


async def test_a_batch_identify_cancelled_by_a_deadlock_runs_again_and_answers_200(
    served: httpx.AsyncClient, app: Litestar, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A writer outside the batch's lock order (here the test's own transaction) closes a
    cycle: PostgreSQL cancels the batch, which rolls back and runs again once that writer is
    done, rather than answering 500."""
    async with sessions() as db:
        if db.get_bind().dialect.name != "postgresql":
            pytest.skip("SQLite runs one writer at a time: nothing can deadlock")
    auth = await _auth(sessions)
    async with sessions() as db, db.begin():
        db.add(Contact(email="p0@example.se", first_name="Per", attributes={}, tags=[]))
    locking_rows = asyncio.Event()

    def signal(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FOR NO KEY UPDATE" in statement or statement.startswith("UPDATE contacts"):
            locking_rows.set()

    app_engine = app.state.sessions.kw["bind"].sync_engine
    event.listen(app_engine, "before_cursor_execute", signal)
    try:
        async with sessions() as other, other.begin():
            # The batch, not this transaction, is the one PostgreSQL finds in the cycle.
            await other.execute(text("SET LOCAL deadlock_timeout = '60s'"))
            await other.execute(
                select(Contact.id).where(Contact.email == "p0@example.se").with_for_update()
            )
            request = asyncio.create_task(
                served.post(
                    "/api/v1/batch/identify",
                    json={"items": [{"email": "p0@example.se", "first_name": "Åsa"}]},
                    headers=auth,
                )
            )
            await locking_rows.wait()
            # The batch holds the lock on the address and waits for the row held here.
            await other.execute(
                text("SELECT pg_advisory_xact_lock(:key)"),
                {"key": lock_key("email:p0@example.se")},
            )
        response = await request
    finally:
        event.remove(app_engine, "before_cursor_execute", signal)
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["result"]["created"] is False
    async with sessions() as db:
        assert list(await db.scalars(select(Contact.first_name))) == ["Åsa"]


# -- the batch path -------------------------------------------------------------------------------


async def test_a_batch_reports_bad_items_alone_and_stores_the_rest(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    auth = await _auth(sessions)
    async with sessions() as db, db.begin():
        db.add(Contact(email="known@example.se", external_id="crm-1", attributes={}, tags=[]))
    items: list[dict[str, Any]] = [
        {"type": "page.viewed", "email": "new@example.se", "idempotency_key": "a"},
        {"type": "page.viewed", "contact_id": 999_999},
        {"type": "page.viewed", "email": "new@example.se", "idempotency_key": "a"},
        {"type": "bad type!", "email": "x@example.se"},
        {"type": "page.viewed", "external_id": "crm-2", "email": "known@example.se"},
        {"type": "page.viewed", "visitor_id": "v-1"},
        {"type": "page.viewed", "email": "not-an-email"},
        {"type": "page.viewed", "external_id": "crm-1"},
    ]
    response = await client.post("/api/v1/batch/track", json={"items": items}, headers=auth)
    assert response.status_code == 202, response.text
    body = response.json()
    verdicts = [r["ok"] for r in body["results"]]
    assert verdicts == [True, False, True, False, False, True, False, True]
    results = body["results"]
    assert results[2]["result"]["duplicate"] and not results[0]["result"]["duplicate"]
    assert results[2]["result"]["event_id"] == results[0]["result"]["event_id"]
    assert results[1]["error"]["field"] == "contact_id"
    assert results[4]["error"]["field"] == "email"
    assert results[6]["error"]["field"] == "email"
    assert (body["accepted"], body["rejected"]) == (4, 4)
    # The refused items wrote nothing: no contact crm-2 or x@, no event for them.
    async with sessions() as db:
        emails = set(await db.scalars(select(Contact.email)))
        assert emails == {"known@example.se", "new@example.se"}
        assert await db.get(Visitor, "v-1") is not None
    assert await _count(sessions, Event) == 3


# -- all or nothing -------------------------------------------------------------------------------


WELCOME = {
    "nodes": [
        {"id": "t", "type": "trigger.event", "config": {"event_type": "order.paid"}},
        {"id": "tag", "type": "action.tag", "config": {"add": ["buyer"]}},
    ],
    "edges": [{"source": "t", "port": "next", "target": "tag"}],
    "settings": {},
}


async def test_a_request_failing_after_the_event_insert_leaves_nothing_and_its_retry_acts_once(
    client: Client, app: Litestar, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as db, db.begin():
        flow = await flows.create_flow(db, "Welcome", graph=WELCOME)
        await flows.publish(db, flow.id, app.state.runtime.registry)
    auth = await _auth(sessions)
    body = {"type": "order.paid", "email": "ny@example.se", "idempotency_key": "order-7"}
    written: list[str] = []

    def fail_after_the_event(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO EVENTS"):
            written.append(statement)
        elif written and statement.lstrip().upper().startswith("INSERT INTO JOURNEYS"):
            raise ConnectionError("the database went away mid-request")

    app_engine = app.state.sessions.kw["bind"].sync_engine
    event.listen(app_engine, "before_cursor_execute", fail_after_the_event)
    try:
        failed = await client.post("/api/v1/track", json=body, headers=auth)
    finally:
        event.remove(app_engine, "before_cursor_execute", fail_after_the_event)
    assert written and failed.status_code >= 500
    for model in (Contact, Event, Journey):
        assert await _count(sessions, model) == 0, model
    retried = await client.post("/api/v1/track", json=body, headers=auth)
    again = await client.post("/api/v1/track", json=body, headers=auth)
    assert retried.status_code == again.status_code == 202, retried.text
    assert retried.json()["enrolled"] == 1 and again.json()["duplicate"] is True
    assert [await _count(sessions, m) for m in (Contact, Event, Journey)] == [1, 1, 1]
