"""Two web processes (two app instances) share the snippet's rate limits through Redis."""

from __future__ import annotations

import json
import secrets

from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.app import create_app
from backend.personalization.cache import Personalizer
from backend.ratebudget import block_size
from backend.ratelimit import Limit
from tests.backend.personalization.conftest import ORIGIN, SITE_KEY, make_shop
from tests.backend.web.support import settings_for

PAGE = {"url": "https://shop.example.com/"}


async def test_two_app_instances_share_one_visitor_budget(
    db_url: str,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    redis_url: str,
) -> None:
    await make_shop(sessions)
    settings = settings_for(db_url, redis_url=redis_url)
    limit = Limit(count=10, seconds=86_400)
    vid = f"v-{secrets.token_hex(12)}"  # a budget no earlier run has touched
    body = json.dumps({"key": SITE_KEY, "vid": vid, "slots": ["hero"], "page": PAGE})
    headers = {"Content-Type": "text/plain", "Origin": ORIGIN}
    async with (
        AsyncTestClient(create_app(settings), base_url="http://one.local") as one,
        AsyncTestClient(create_app(settings), base_url="http://two.local") as two,
    ):
        for client in (one, two):
            personalizer = client.app.state.personalizer
            assert isinstance(personalizer, Personalizer)
            personalizer.visitor_limit = limit
        codes = [
            (await client.post("/p/v1/decide", content=body, headers=headers)).status_code
            for _ in range(10)
            for client in (one, two)
        ]
    # Each instance alone would admit all ten of its own; together they keep to the
    # one budget, give or take the block each reserves ahead.
    admitted = codes.count(200)
    assert limit.count - 2 * block_size(limit) <= admitted <= limit.count + 2 * block_size(limit)
    assert admitted < len(codes)
    assert set(codes[-4:]) == {429}  # both refuse once it is spent
