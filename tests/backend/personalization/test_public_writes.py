"""``/p/v1/identify`` all or nothing: a request failing after it created the contact
leaves no contact and no visitor, and its retry makes one of each; the rate
limiter's network call happens outside any transaction."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Contact, Visitor
from backend.ratelimit import Limit, MemoryRateLimiter
from backend.web.personalization import api
from tests.backend.personalization.conftest import VISITOR, Post, Shop, identify_token
from tests.backend.web.support import MovableClock
from tests.backend.web.test_public_writes import fail_once

PAGE = {"url": "https://shop.example.com/pricing", "title": "Pricing"}


async def _rows(sessions: async_sessionmaker[AsyncSession]) -> list[int]:
    async with sessions() as db:
        return [
            int(await db.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Contact, Visitor)
        ]


async def test_a_claim_failing_after_the_contact_insert_leaves_nothing_and_retries_once(
    app: Litestar,
    snippet: Post,
    shop: Shop,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app.state.rate_limiter = MemoryRateLimiter()
    failed = fail_once(monkeypatch, api, "claim")
    response = await snippet("identify", email="åsa@example.se", page=PAGE)
    assert failed and response.status_code >= 500
    assert await _rows(sessions) == [0, 0]
    for _ in range(2):
        retried = await snippet("identify", email="åsa@example.se", page=PAGE)
        assert retried.status_code == 200, retried.text
    assert await _rows(sessions) == [1, 1]
    async with sessions() as db:
        visitor = await db.get(Visitor, VISITOR)
        contact_id = await db.scalar(select(Contact.id))
    assert visitor is not None and visitor.claimed_contact_id == contact_id


async def test_a_proof_failing_after_the_contact_insert_leaves_nothing_and_retries_once(
    app: Litestar,
    snippet: Post,
    shop: Shop,
    sessions: async_sessionmaker[AsyncSession],
    clock: MovableClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = identify_token(app, clock, external_id="shop-42", email="örjan@example.se")
    failed = fail_once(monkeypatch, api, "stitch")
    response = await snippet("identify", token=token, page=PAGE)
    assert failed and response.status_code >= 500
    assert await _rows(sessions) == [0, 0]
    for _ in range(2):
        retried = await snippet("identify", token=token, page=PAGE)
        assert retried.json()["verified"] is True
    assert await _rows(sessions) == [1, 1]


async def test_the_new_contact_budget_is_checked_with_no_database_connection_held(
    app: Litestar, snippet: Post, shop: Shop, sessions: async_sessionmaker[AsyncSession]
) -> None:
    pool = app.state.sessions.kw["bind"].pool
    held: list[int] = []

    class Watching(MemoryRateLimiter):
        async def hit(self, key: str, limit: Limit) -> float | None:
            # A network round trip in real life (Redis): no transaction may wait on it.
            held.append(pool.checkedout())
            return await super().hit(key, limit)

    app.state.rate_limiter = Watching()
    answer: Any = await snippet("identify", email="ny@example.se", page=PAGE)
    assert answer.status_code == 200
    assert held and set(held) == {0}
    assert await _rows(sessions) == [1, 1]
