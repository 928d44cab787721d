"""Fixtures for personalization: the web app (from tests/backend/web), a site and its content."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Audience, ContentBlock, ContentRule, ContentVariant, SiteKey
from backend.personalization.verify import identify_secret, sign_identify_token
from backend.worker import extra_deliverers
from runtime.engine import Runtime, build_runtime
from tests.backend.web.conftest import app, client, clock, signed_in
from tests.backend.web.support import MovableClock

__all__ = ["app", "client", "clock", "signed_in"]

ORIGIN = "https://shop.example.com"
SITE_KEY = "tfs_test-shop-key"
VISITOR = "v-0123456789abcdef"


def identify_token(app: Litestar, clock: MovableClock, **claims: Any) -> str:
    """What the shop's backend would sign for the person signed in on its pages."""
    secret = identify_secret(app.state.settings.resolved_secret_key(), SITE_KEY)
    return sign_identify_token(secret, {"exp": int(clock.now().timestamp()) + 600, **claims})


@dataclass
class Shop:
    """A site key for ORIGIN and a hero block: LinkedIn variant, known-contact variant."""

    site_id: int
    block_id: int
    variants: dict[str, int]


async def make_shop(sessions: async_sessionmaker[AsyncSession]) -> Shop:
    async with sessions() as db, db.begin():
        site = SiteKey(name="Shop", key=SITE_KEY, allowed_origins=[ORIGIN])
        block = ContentBlock(name="Hero", description="")
        db.add_all([site, block])
        await db.flush()
        variants = {
            "linkedin": ContentVariant(
                block_id=block.id, key="linkedin", name="LinkedIn", html="<h2>Hi LinkedIn</h2>"
            ),
            "known": ContentVariant(
                block_id=block.id, key="known", name="Known", html="<h2>Welcome back</h2>"
            ),
        }
        db.add_all(variants.values())
        await db.flush()
        db.add_all(
            [
                ContentRule(
                    slot="hero",
                    variant_id=variants["known"].id,
                    priority=1,
                    audience=Audience.known.value,
                ),
                ContentRule(
                    slot="hero",
                    variant_id=variants["linkedin"].id,
                    priority=10,
                    utm_source="linkedin",
                    audience=Audience.anonymous.value,
                ),
            ]
        )
        return Shop(site.id, block.id, {k: v.id for k, v in variants.items()})


@pytest.fixture
async def shop(sessions: async_sessionmaker[AsyncSession]) -> Shop:
    return await make_shop(sessions)


@pytest.fixture
def worker(
    app: Litestar, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> Runtime:
    """A runtime like the app's (same channels), on this test's event loop.

    The app's own runtime lives on the test client's loop; steps and deliveries
    run here, against the same database.
    """
    return build_runtime(
        app.state.settings,
        sessions=sessions,
        clock=clock,
        deliverers=extra_deliverers(sessions, clock),
    )


Post = Callable[..., Awaitable[Any]]


@pytest.fixture
def snippet(client: AsyncTestClient[Litestar]) -> Post:
    """``await snippet("decide", slots=[...])``: post like the snippet does (text/plain JSON)."""

    async def send(
        path: str, *, origin: str | None = ORIGIN, vid: str = VISITOR, **body: Any
    ) -> Any:
        payload = {"key": SITE_KEY, "vid": vid, **body}
        headers = {"Content-Type": "text/plain"}
        if origin is not None:
            headers["Origin"] = origin
        return await client.post(f"/p/v1/{path}", content=json.dumps(payload), headers=headers)

    return send
