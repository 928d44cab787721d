"""What a public site key may and may not do: origins, revocation, limits, bad input, CORS."""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import SiteKey
from backend.personalization.cache import Personalizer
from backend.ratelimit import Limit
from tests.backend.personalization.conftest import ORIGIN, Post, Shop

PAGE = {"url": "https://shop.example.com/?utm_source=linkedin"}


async def test_other_origins_are_refused_without_cors_headers(snippet: Post, shop: Shop) -> None:
    for origin in ("https://evil.example.net", "http://shop.example.com", None):
        response = await snippet("decide", slots=["hero"], page=PAGE, origin=origin)
        assert response.status_code == 403, origin
        assert "access-control-allow-origin" not in response.headers
        assert "not allowed for this site key" in response.json()["error"]["message"]


async def test_unknown_and_revoked_keys_are_refused(
    snippet: Post,
    shop: Shop,
    sessions: async_sessionmaker[AsyncSession],
    client: AsyncTestClient[Litestar],
) -> None:
    assert (await snippet("decide", slots=["hero"], page=PAGE)).status_code == 200
    async with sessions() as db, db.begin():
        await db.execute(update(SiteKey).values(revoked_at=datetime.now(UTC)))
    personalizer_of(client).forget()  # other processes notice within the cache's TTL
    response = await snippet("decide", slots=["hero"], page=PAGE)
    assert response.status_code == 403
    assert "unknown or was revoked" in response.json()["error"]["message"]


def personalizer_of(client: AsyncTestClient[Litestar]) -> Personalizer:
    engine = client.app.state.personalizer
    assert isinstance(engine, Personalizer)
    return engine


async def test_rate_limits_per_visitor_and_per_key(
    snippet: Post, shop: Shop, client: AsyncTestClient[Litestar]
) -> None:
    engine = personalizer_of(client)
    engine.visitor_limit = Limit(count=2, seconds=60)
    engine.key_limit = Limit(count=4, seconds=60)
    codes = [(await snippet("decide", slots=["hero"], page=PAGE)).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    limited = await snippet("decide", slots=["hero"], page=PAGE)
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["access-control-allow-origin"] == ORIGIN
    # Another visitor still gets through until the key's own limit is used up.
    other = [
        (await snippet("decide", slots=["hero"], page=PAGE, vid="v-another-visitor-1")).status_code
        for _ in range(2)
    ]
    assert other == [429, 429]


async def test_bad_input_gets_a_clear_400(snippet: Post, shop: Shop) -> None:
    bad_vid = await snippet("decide", slots=["hero"], page=PAGE, vid="short")
    assert bad_vid.status_code == 400
    assert "vid" in bad_vid.json()["error"]["message"]
    bad_slot = await snippet("decide", slots=["<script>"], page=PAGE)
    assert bad_slot.status_code == 400
    assert "slot names use a-z" in bad_slot.json()["error"]["message"]
    too_many = await snippet("decide", slots=[f"s{n}" for n in range(21)], page=PAGE)
    assert too_many.status_code == 400
    reserved = await snippet("events", type="form.submitted", page=PAGE)
    assert reserved.status_code == 400
    assert "reserved for Touchflow" in reserved.json()["error"]["message"]


async def test_garbage_body_and_oversized_body(
    client: AsyncTestClient[Litestar], shop: Shop
) -> None:
    garbage = await client.post("/p/v1/decide", content=b"not json", headers={"Origin": ORIGIN})
    assert garbage.status_code == 400
    assert "not valid" in garbage.json()["error"]["message"]
    huge = await client.post("/p/v1/events", content=b"x" * 20_000, headers={"Origin": ORIGIN})
    assert huge.status_code == 413


async def test_preflight_allows_json_posts(client: AsyncTestClient[Litestar]) -> None:
    response = await client.options(
        "/p/v1/decide",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in response.headers["access-control-allow-methods"]
