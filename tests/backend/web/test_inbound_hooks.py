"""Inbound sources: the settings page, and signed posts to /hooks/in/{token} becoming events."""

from __future__ import annotations

import json
import re
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.inbound import sign
from backend.models import AuditEntry, Contact, Event, Role
from backend.models.ingestion import InboundSource
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import MovableClock, post_form

Client = AsyncTestClient[Litestar]

SOURCE_SECRET = "s3cret"
SHOP_MAPPING = {
    "name": "Shop",
    "event_type": "$.type",
    "email": "$.customer.email",
    "properties": "$.data",
    "idempotency_key": "$.id",
}


async def make_source(sessions: async_sessionmaker[AsyncSession]) -> InboundSource:
    async with sessions() as db, db.begin():
        source = InboundSource(
            name="Shop",
            token="tok123",
            secret="s3cret",
            mapping={
                "event_type": "$.type",
                "email": "$.customer.email",
                "external_id": None,
                "properties": "$.data",
                "occurred_at": None,
                "idempotency_key": "$.id",
            },
        )
        db.add(source)
    return source


def signed(
    payload: Any, clock: MovableClock, secret: str | None = None, age: int = 0
) -> dict[str, Any]:
    secret = secret or SOURCE_SECRET
    body = json.dumps(payload).encode()
    stamp = int(clock.now().timestamp()) - age
    return {
        "content": body,
        "headers": {
            "X-Touchflow-Signature": sign(secret, stamp, body),
            "Content-Type": "application/json",
        },
    }


ORDER = {
    "id": "o-1",
    "type": "order.paid",
    "customer": {"email": "Buyer@Example.com"},
    "data": {"total": 499, "currency": "SEK"},
}


async def test_admin_creates_a_source_and_sees_the_secret_once(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.admin)
    response = await post_form(
        client, "/settings/inbound", SHOP_MAPPING, form_page="/settings/inbound"
    )
    assert response.status_code == 200, response.text
    async with sessions() as db:
        source = (await db.scalars(select(InboundSource))).one()
        actions = (await db.scalars(select(AuditEntry.action))).all()
    assert f"http://testserver.local/hooks/in/{source.token}" in response.text
    assert source.secret in response.text
    assert source.mapping["email"] == "$.customer.email"
    assert "inbound_source.created" in actions
    later = await client.get("/settings/inbound")
    assert source.token in later.text and source.secret not in later.text


async def test_bad_mappings_are_explained_per_field(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.admin)
    bad = {"name": "", "event_type": "", "email": "customer.email"}
    response = await post_form(
        client, "/settings/inbound", bad, form_page="/settings/inbound", htmx=True
    )
    assert response.status_code == 422
    assert 'id="name-error"' in response.text
    assert 'id="event_type-error"' in response.text
    assert "starting with $" in response.text
    async with sessions() as db:
        assert (await db.scalars(select(InboundSource))).first() is None
    marketer = await signed_in(Role.marketer)
    assert (await marketer.get("/settings/inbound")).status_code == 403


async def test_signed_post_becomes_an_event_once(
    client: Client, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    await make_source(sessions)
    response = await client.post("/hooks/in/tok123", **signed(ORDER, clock))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 1 and body["results"][0]["duplicate"] is False
    again = await client.post("/hooks/in/tok123", **signed(ORDER, clock))  # a retried delivery
    assert again.status_code == 202 and again.json()["results"][0]["duplicate"] is True
    async with sessions() as db:
        event = (await db.scalars(select(Event))).one()
        contact = await db.get(Contact, event.contact_id)
        source = (await db.scalars(select(InboundSource))).one()
    assert (event.type, event.properties) == ("order.paid", {"total": 499, "currency": "SEK"})
    assert contact is not None and contact.email == "buyer@example.com"
    assert event.source == "hook:Shop"
    assert source.last_received_at is not None


async def test_bearer_secret_and_batches(
    client: Client, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    await make_source(sessions)
    items = [
        {**ORDER, "id": "o-2"},
        {"id": "o-3", "customer": {"email": "x@example.com"}, "data": {}},  # no type
    ]
    response = await client.post(
        "/hooks/in/tok123", json=items, headers={"Authorization": "Bearer s3cret"}
    )
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert body["results"][1]["field"] == "event_type"
    assert "no event type" in body["results"][1]["message"]
    async with sessions() as db:
        assert len((await db.scalars(select(Event))).all()) == 1


async def test_refusals_are_clear_json(
    client: Client, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    await make_source(sessions)
    unknown = await client.post("/hooks/in/nope", **signed(ORDER, clock))
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    wrong = await client.post("/hooks/in/tok123", **signed(ORDER, clock, secret="guess"))
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "bad_signature"
    unsigned = await client.post("/hooks/in/tok123", json=ORDER)
    assert unsigned.status_code == 401
    # Replay protection: a correctly signed request captured ten minutes ago is refused.
    replayed = await client.post("/hooks/in/tok123", **signed(ORDER, clock, age=600))
    assert replayed.status_code == 401
    tampered = signed(ORDER, clock)
    tampered["content"] = tampered["content"].replace(b"499", b"1")
    assert (await client.post("/hooks/in/tok123", **tampered)).status_code == 401
    not_json = await client.post("/hooks/in/tok123", **{**signed(ORDER, clock), "content": b""})
    assert not_json.status_code == 401  # the signature covers the body, so this is unsigned
    garbage = b"{not json"
    stamp = int(clock.now().timestamp())
    bad_json = await client.post(
        "/hooks/in/tok123",
        content=garbage,
        headers={"X-Touchflow-Signature": sign("s3cret", stamp, garbage)},
    )
    assert bad_json.status_code == 400 and "not JSON" in bad_json.json()["error"]["message"]
    no_customer = {"id": "o-9", "type": "order.paid", "data": {}}
    invalid = await client.post("/hooks/in/tok123", **signed(no_customer, clock))
    assert invalid.status_code == 422
    assert re.search(r"say whose event", invalid.json()["error"]["message"])
    huge = {**ORDER, "data": {"blob": "x" * 600_000}}
    too_big = await client.post("/hooks/in/tok123", **signed(huge, clock))
    assert too_big.status_code == 413
    assert too_big.json()["error"]["code"], "a refusal the framework raises is JSON here too"
    async with sessions() as db:
        assert (await db.scalars(select(Event))).first() is None


async def test_revoked_sources_refuse_posts(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    source = await make_source(sessions)
    client = await signed_in(Role.admin)
    revoked = await post_form(
        client, f"/settings/inbound/{source.id}/revoke", {}, form_page="/settings/inbound"
    )
    assert revoked.status_code == 200 and "revoked" in revoked.text
    refused = await client.post("/hooks/in/tok123", **signed(ORDER, clock))
    assert refused.status_code == 404


async def test_admin_changes_a_sources_mapping(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    source = await make_source(sessions)
    client = await signed_in(Role.admin)
    path = f"/settings/inbound/{source.id}"
    bad = await post_form(
        client, path, {"event_type": "", "email": "$.buyer"}, form_page="/settings/inbound"
    )
    assert bad.status_code == 422
    assert f'id="in-{source.id}-event_type-error"' in bad.text
    changed = await post_form(
        client,
        path,
        {"event_type": "shop.order", "email": "$.buyer", "properties": "$"},
        form_page="/settings/inbound",
    )
    assert changed.status_code == 200
    response = await client.post(
        "/hooks/in/tok123", **signed({"buyer": "b@example.com", "total": 5}, clock)
    )
    assert response.status_code == 202, response.text
    async with sessions() as db:
        event = (await db.scalars(select(Event))).one()
        actions = (await db.scalars(select(AuditEntry.action))).all()
    assert (event.type, event.properties) == ("shop.order", {"buyer": "b@example.com", "total": 5})
    assert "inbound_source.changed" in actions
