"""The contacts API's GDPR calls and the audience count, with API keys."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import AuditEntry, Contact, Event, Role
from tests.backend.web.support import add_api_key

Client = AsyncTestClient[Litestar]


async def _auth(sessions: async_sessionmaker[AsyncSession], role: Role) -> dict[str, str]:
    _, token = await add_api_key(sessions, role, name=f"{role.value}-key")
    return {"Authorization": f"Bearer {token}"}


async def _contacts(sessions: async_sessionmaker[AsyncSession]) -> list[int]:
    async with sessions() as db, db.begin():
        rows = [
            Contact(email="a@example.com", attributes={"city": "Malmö", "age": 30}),
            Contact(email="b@example.com", attributes={"city": "Malmö", "age": 52}),
            Contact(email="c@example.com", attributes={"city": "Lund"}),
        ]
        db.add_all(rows)
        await db.flush()
        db.add(Event(type="order.paid", contact_id=rows[0].id, properties={"total": 10}))
        return [r.id for r in rows]


async def test_export_returns_everything_and_is_audited(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    ids = await _contacts(sessions)
    auth = await _auth(sessions, Role.marketer)
    response = await client.get(f"/api/v1/contacts/{ids[0]}/export", headers=auth)
    assert response.status_code == 200
    body = response.json()
    assert body["contact"]["email"] == "a@example.com"
    assert body["events"][0]["properties"] == {"total": 10}
    assert set(body) >= {"consent_history", "journeys", "messages", "visitors"}
    missing = await client.get("/api/v1/contacts/99999/export", headers=auth)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    viewer = await _auth(sessions, Role.viewer)
    assert (
        await client.get(f"/api/v1/contacts/{ids[0]}/export", headers=viewer)
    ).status_code == 403
    async with sessions() as db:
        audit = (await db.scalars(select(AuditEntry))).all()
    assert [(a.action, a.target_id, a.actor_type) for a in audit] == [
        ("contact.exported", str(ids[0]), "api_key")
    ] or [(a.action, a.target_id) for a in audit] == [("contact.exported", str(ids[0]))]


async def test_delete_erases_and_needs_an_admin_key(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    ids = await _contacts(sessions)
    marketer = await _auth(sessions, Role.marketer)
    assert (await client.delete(f"/api/v1/contacts/{ids[1]}", headers=marketer)).status_code == 403
    admin = await _auth(sessions, Role.admin)
    response = await client.delete(f"/api/v1/contacts/{ids[1]}", headers=admin)
    assert response.status_code == 204
    assert (await client.get(f"/api/v1/contacts/{ids[1]}", headers=admin)).status_code == 404
    again = await client.delete(f"/api/v1/contacts/{ids[1]}", headers=admin)
    assert again.status_code == 404
    async with sessions() as db:
        erased = await db.get(Contact, ids[1])
        actions = (await db.scalars(select(AuditEntry.action))).all()
    assert erased is not None and erased.email is None and erased.attributes == {}
    assert actions == ["contact.erased"]


async def test_audience_count_uses_the_rule_compiler(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    ids = await _contacts(sessions)
    auth = await _auth(sessions, Role.viewer)
    malmo = {"attribute": "city", "type": "string", "op": "equals", "value": "malmö"}
    response = await client.post("/api/v1/audiences/count", json={"rule": malmo}, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json() == {"count": 2}
    buyers = {"all": [malmo, {"event": "order.paid"}]}
    assert (
        await client.post("/api/v1/audiences/count", json={"rule": buyers}, headers=auth)
    ).json() == {"count": 1}
    admin = await _auth(sessions, Role.admin)
    await client.delete(f"/api/v1/contacts/{ids[0]}", headers=admin)
    after = await client.post("/api/v1/audiences/count", json={"rule": malmo}, headers=auth)
    assert after.json() == {"count": 1}  # erased contacts are never in an audience


async def test_audience_count_refuses_bad_rules_clearly(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    auth = await _auth(sessions, Role.viewer)
    bad = {"attribute": "age", "type": "number", "op": "contains", "value": 3}
    response = await client.post("/api/v1/audiences/count", json={"rule": bad}, headers=auth)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "contains" in error["message"]
    assert error["details"][0]["path"] in ("op", "")
    zone = await client.post(
        "/api/v1/audiences/count",
        json={"rule": {"all": []}, "timezone": "Mars/Olympus"},
        headers=auth,
    )
    assert zone.status_code == 400
    assert "Mars/Olympus" in str(zone.json()["error"])
    anonymous = await client.post("/api/v1/audiences/count", json={"rule": {"all": []}})
    assert anonymous.status_code == 401
