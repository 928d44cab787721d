"""``POST /api/v1/flows/{id}/start``: another system starts a flow for one customer."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.db import transaction
from backend.models import Contact, Journey, Role
from nodes.sdk.registry import discover
from runtime.flows import create_flow, publish
from tests.backend.web.support import add_api_key

Client = AsyncTestClient[Litestar]

GRAPH = {
    "nodes": [
        {"id": "api", "type": "trigger.api", "config": {}},
        {"id": "call", "type": "action.task", "config": {"title": "Call {{ first_name }}"}},
    ],
    "edges": [{"source": "api", "port": "next", "target": "call"}],
    "settings": {"reentry": "once"},
}


async def _setup(sessions: async_sessionmaker[AsyncSession], *, published: bool) -> tuple[int, int]:
    async with transaction(sessions) as db:
        contact = Contact(email="ada@example.com", external_id="crm-1", first_name="Ada")
        db.add(contact)
        flow = await create_flow(db, "Onboarding call", graph=GRAPH)
        if published:
            await publish(db, flow.id, discover())
        return flow.id, contact.id


async def _auth(sessions: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    _, token = await add_api_key(sessions, Role.marketer)
    return {"Authorization": f"Bearer {token}"}


async def test_start_enrolls_once_and_respects_reentry(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    flow_id, contact_id = await _setup(sessions, published=True)
    auth = await _auth(sessions)
    url = f"/api/v1/flows/{flow_id}/start"

    first = await client.post(
        url, json={"external_id": "crm-1", "data": {"plan": "pro"}}, headers=auth
    )
    assert first.status_code == 202, first.text
    assert (first.json()["started"], first.json()["unsubscribed"]) == (True, False)
    again = await client.post(url, json={"email": "ADA@example.com"}, headers=auth)
    assert again.status_code == 202
    assert again.json() == {"journey_id": None, "started": False, "unsubscribed": False}

    async with sessions() as db:
        journeys = (await db.scalars(select(Journey).where(Journey.flow_id == flow_id))).all()
    assert [j.contact_id for j in journeys] == [contact_id]
    assert journeys[0].id == first.json()["journey_id"]


async def test_start_says_when_the_journey_sends_only_transactional_messages(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    flow_id, _ = await _setup(sessions, published=True)
    async with transaction(sessions) as db:
        withdrawn = Contact(
            email="bo@example.com", first_name="Bo", consent={"email": {"granted": False}}
        )
        db.add(withdrawn)
    auth = await _auth(sessions)
    answer = await client.post(
        f"/api/v1/flows/{flow_id}/start", json={"email": "bo@example.com"}, headers=auth
    )
    assert answer.status_code == 202, answer.text
    assert (answer.json()["started"], answer.json()["unsubscribed"]) == (True, True)


async def test_start_refuses_unknown_customers_drafts_and_ambiguous_bodies(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    flow_id, contact_id = await _setup(sessions, published=False)
    auth = await _auth(sessions)
    url = f"/api/v1/flows/{flow_id}/start"

    unknown = await client.post(url, json={"email": "nobody@example.com"}, headers=auth)
    assert unknown.status_code == 404
    assert "identify them first" in unknown.json()["error"]["message"]

    draft = await client.post(url, json={"contact_id": contact_id}, headers=auth)
    assert draft.status_code == 409
    assert "not active" in draft.json()["error"]["message"]

    both = await client.post(url, json={"contact_id": contact_id, "email": "a@b.se"}, headers=auth)
    assert both.status_code == 400
    assert "name the customer once" in both.json()["error"]["message"]

    viewer = await client.post(
        url, json={"contact_id": contact_id}, headers={"Authorization": (await _viewer(sessions))}
    )
    assert viewer.status_code == 403


async def _viewer(sessions: async_sessionmaker[AsyncSession]) -> str:
    _, token = await add_api_key(sessions, Role.viewer)
    return f"Bearer {token}"
