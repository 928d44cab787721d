"""``/api/v1/lifecycle``: cards as JSON, the revision rule as 409, the gap numbers."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Role
from tests.backend.lifecycle.helpers import card, first_process, flow, link
from tests.backend.web.support import add_api_key


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_cards_saves_and_gaps_over_the_api(
    client: AsyncTestClient[Litestar], sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as db, db.begin():
        process = await first_process(db)
        want = await card(db, process.id, "Kvitto", "customer")
        mail = await card(
            db, process.id, "Bekräftelse", "company", status="automated", answers_id=want.id
        )
        await link(db, mail, await flow(db, "Välkomst", "active"), "mail")
    _key, reader = await add_api_key(sessions, Role.viewer, name="läsare")
    _key, writer = await add_api_key(sessions, Role.marketer, name="skrivare")

    listed = await client.get(
        f"/api/v1/lifecycle/processes/{process.id}/touchpoints", headers=_bearer(reader)
    )
    assert listed.status_code == 200
    body = listed.json()
    assert [c["title"] for c in body] == ["Kvitto", "Bekräftelse"]
    assert body[1]["links"] == [{"flow_id": body[1]["links"][0]["flow_id"], "node_id": "mail"}]

    change = {
        "revision": 1,
        "title": "Kvitto direkt",
        "category": "customer",
        "priority": 1,
        "channels": ["email"],
        "customer_group": "Nya kunder i Umeå",
    }
    refused = await client.patch(
        f"/api/v1/lifecycle/touchpoints/{want.id}", json=change, headers=_bearer(reader)
    )
    assert refused.status_code == 403
    saved = await client.patch(
        f"/api/v1/lifecycle/touchpoints/{want.id}", json=change, headers=_bearer(writer)
    )
    assert saved.status_code == 200 and saved.json()["revision"] == 2
    assert saved.json()["customer_group"] == "Nya kunder i Umeå"
    stale = await client.patch(
        f"/api/v1/lifecycle/touchpoints/{want.id}", json=change, headers=_bearer(writer)
    )
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "conflict"
    assert "Someone else changed" in stale.json()["error"]["message"]
    bad = await client.patch(
        f"/api/v1/lifecycle/touchpoints/{want.id}",
        json={**change, "revision": 2, "category": "boss"},
        headers=_bearer(writer),
    )
    assert bad.status_code == 400 and "category" in bad.json()["error"]["message"]
    missing = await client.get(
        "/api/v1/lifecycle/processes/9999/touchpoints", headers=_bearer(reader)
    )
    assert missing.status_code == 404

    gaps = await client.get("/api/v1/lifecycle/gaps", headers=_bearer(reader))
    assert gaps.status_code == 200
    total = gaps.json()["total"]
    assert total["customer_coverage"] == 100 and total["automation_live"] == 100
    assert gaps.json()["phases"][1]["gaps"]["customer_coverage"] is None
