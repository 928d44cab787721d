"""identify / track / batch over HTTP with an API key, on SQLite and PostgreSQL."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Contact, Event, Role
from tests.backend.web.support import add_api_key

Client = AsyncTestClient[Litestar]


async def _key(
    sessions: async_sessionmaker[AsyncSession], role: Role = Role.marketer
) -> dict[str, str]:
    _, token = await add_api_key(sessions, role)
    return {"Authorization": f"Bearer {token}"}


async def _count(sessions: async_sessionmaker[AsyncSession], model: type) -> int:
    async with sessions() as db:
        return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def test_identify_creates_then_updates(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    auth = await _key(sessions)
    first = await client.post(
        "/api/v1/identify",
        json={"email": "Ola@Example.se", "attributes": {"city": "Malmö"}},
        headers=auth,
    )
    assert first.status_code == 200, first.text
    assert first.json()["created"] is True
    second = await client.post(
        "/api/v1/identify", json={"email": "ola@example.se", "phone": "0701234567"}, headers=auth
    )
    assert second.json() == {"contact_id": first.json()["contact_id"], "created": False}
    async with sessions() as db:
        contact = await db.get(Contact, first.json()["contact_id"])
        assert contact is not None
        assert (contact.email, contact.phone, contact.attributes) == (
            "ola@example.se",
            "+46701234567",
            {"city": "Malmö"},
        )


async def test_bad_identify_gets_a_clear_json_error_and_writes_nothing(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    auth = await _key(sessions)
    response = await client.post("/api/v1/identify", json={"email": "not-an-email"}, headers=auth)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] in {"bad_request", "validation_failed"}
    assert "not a valid email" in error["message"]
    missing = await client.post("/api/v1/identify", json={"first_name": "X"}, headers=auth)
    assert missing.status_code == 400
    assert "email or an external_id" in str(missing.json()["error"])
    assert await _count(sessions, Contact) == 0


async def test_track_stores_an_event_once_per_idempotency_key(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    auth = await _key(sessions)
    body = {
        "type": "order.paid",
        "email": "buyer@example.com",
        "properties": {"total": 990},
        "idempotency_key": "o-1",
    }
    first = await client.post("/api/v1/track", json=body, headers=auth)
    again = await client.post("/api/v1/track", json=body, headers=auth)
    assert first.status_code == again.status_code == 202, first.text
    assert first.json()["duplicate"] is False and again.json()["duplicate"] is True
    assert first.json()["event_id"] == again.json()["event_id"]
    assert await _count(sessions, Event) == 1
    # Tracking someone new creates the contact rather than dropping the event.
    assert await _count(sessions, Contact) == 1


async def test_track_refuses_oversized_properties_and_unknown_contacts(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    auth = await _key(sessions)
    big = await client.post(
        "/api/v1/track",
        json={"type": "x", "email": "a@example.com", "properties": {"blob": "x" * 40_000}},
        headers=auth,
    )
    assert big.status_code == 400 and "too large" in big.json()["error"]["message"]
    unknown = await client.post(
        "/api/v1/track", json={"type": "x", "contact_id": 999}, headers=auth
    )
    assert (
        unknown.status_code == 400
        and "no contact with id 999" in unknown.json()["error"]["message"]
    )
    bad_type = await client.post(
        "/api/v1/track", json={"type": "no spaces!", "email": "a@example.com"}, headers=auth
    )
    assert bad_type.status_code == 400
    assert await _count(sessions, Event) == 0


async def test_batch_reports_each_item_and_keeps_the_good_ones(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    auth = await _key(sessions)
    items = [
        {"email": "a@example.com", "attributes": {"age": 30}},
        {"email": "broken@"},
        {"email": "b@example.com", "attributes": {"age": "old"}},
        {"external_id": "crm-9", "first_name": "Nils"},
        {"email": "c@example.com", "unknown_field": 1},
    ]
    response = await client.post("/api/v1/batch/identify", json={"items": items}, headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 3)
    verdicts = [(r["index"], r["ok"]) for r in body["results"]]
    assert verdicts == [(0, True), (1, False), (2, False), (3, True), (4, False)]
    assert body["results"][2]["error"]["field"] == "attributes.age"
    assert await _count(sessions, Contact) == 2

    events = [
        {"type": "page.viewed", "email": "a@example.com", "properties": {"url": "/"}},
        {"type": "page.viewed"},
        {"type": "page.viewed", "external_id": "crm-9"},
    ]
    tracked = await client.post("/api/v1/batch/track", json={"items": events}, headers=auth)
    assert tracked.status_code == 202, tracked.text
    assert [r["ok"] for r in tracked.json()["results"]] == [True, False, True]
    assert await _count(sessions, Event) == 2


async def test_batches_over_the_limit_and_viewer_keys_are_refused(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    auth = await _key(sessions)
    too_many = [{"email": f"p{i}@example.com"} for i in range(1001)]
    response = await client.post("/api/v1/batch/identify", json={"items": too_many}, headers=auth)
    assert response.status_code == 400
    viewer = await _key(sessions, Role.viewer)
    refused = await client.post("/api/v1/identify", json={"email": "v@example.com"}, headers=viewer)
    assert refused.status_code == 403
    assert await _count(sessions, Contact) == 0
