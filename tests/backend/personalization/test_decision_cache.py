"""Decisions cached per visitor: fresh after this process's changes, bounded staleness otherwise."""

from __future__ import annotations

from datetime import timedelta

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import SlotAssignment, Visitor
from backend.personalization.delivery import WebContentDeliverer
from backend.personalization.recent import RecentVisitors
from backend.personalization.visitors import VisitorState
from runtime.delivery import Outgoing
from tests.backend.personalization.conftest import VISITOR, Post, Shop, identify_token
from tests.backend.personalization.test_security import personalizer_of
from tests.backend.web.support import MovableClock

LINKEDIN_PAGE = {"url": "https://shop.example.com/?utm_source=linkedin", "title": "Shop"}


class Timer:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _frozen_cache(client: AsyncTestClient[Litestar]) -> Timer:
    timer = Timer()
    personalizer_of(client).visitors.timer = timer
    return timer


async def _hero(snippet: Post) -> str:
    slots = (await snippet("decide", slots=["hero"], page=LINKEDIN_PAGE)).json()["slots"]
    return str(slots["hero"]["variant"])


async def test_another_process_write_shows_within_the_ttl(
    client: AsyncTestClient[Litestar],
    snippet: Post,
    shop: Shop,
    sessions: async_sessionmaker[AsyncSession],
    clock: MovableClock,
) -> None:
    timer = _frozen_cache(client)
    async with sessions() as db, db.begin():
        db.add(Visitor(id=VISITOR, site_key_id=shop.site_id, traits={}))
    assert await _hero(snippet) == "linkedin"
    # A write this process does not hear about (a worker process, a manual fix).
    async with sessions() as db, db.begin():
        db.add(
            SlotAssignment(
                slot="hero",
                visitor_id=VISITOR,
                variant_id=shop.variants["known"],
                expires_at=clock.now() + timedelta(hours=1),
            )
        )
    assert await _hero(snippet) == "linkedin"  # the cached read, for up to ttl seconds
    timer.now += personalizer_of(client).visitors.ttl + 0.01
    assert await _hero(snippet) == "known"
    # Expiry is checked on every request, cached or not.
    clock.advance(hours=2)
    assert await _hero(snippet) == "linkedin"


async def test_this_process_delivery_shows_at_once(
    client: AsyncTestClient[Litestar],
    snippet: Post,
    shop: Shop,
    sessions: async_sessionmaker[AsyncSession],
    clock: MovableClock,
) -> None:
    _frozen_cache(client)  # the cache never expires on its own here
    async with sessions() as db, db.begin():
        db.add(Visitor(id=VISITOR, site_key_id=shop.site_id, traits={}))
    assert await _hero(snippet) == "linkedin"
    message = Outgoing(
        id=1,
        idempotency_key="j1:show:1:0",
        channel="web_content",
        payload={
            "slot": "hero",
            "variant_id": shop.variants["known"],
            "visitor_id": VISITOR,
            "expires_at": (clock.now() + timedelta(days=1)).isoformat(),
        },
    )
    await WebContentDeliverer(sessions, clock).deliver(message)
    assert await _hero(snippet) == "known"


async def test_stitching_shows_the_known_variant_at_once(
    app: Litestar, client: AsyncTestClient[Litestar], snippet: Post, shop: Shop, clock: MovableClock
) -> None:
    _frozen_cache(client)
    first = (await snippet("decide", slots=["hero"], page=LINKEDIN_PAGE)).json()
    assert first["known"] is False
    await snippet("events", type="page.viewed", page=LINKEDIN_PAGE)
    token = identify_token(app, clock, email="ada@example.com")
    await snippet("identify", token=token, page=LINKEDIN_PAGE)
    decided = (await snippet("decide", slots=["hero"], page=LINKEDIN_PAGE)).json()
    assert decided["known"] is True
    assert decided["slots"]["hero"]["variant"] == "known"


def test_a_read_overtaken_by_a_change_is_not_kept() -> None:
    cache = RecentVisitors(ttl=60)
    state = VisitorState(exists=True, contact_id=7)
    began = cache.epoch
    cache.drop(["someone-else"], [])  # a change committed while the read ran
    cache.put(VISITOR, state, began)
    assert cache.get(VISITOR) is None
    cache.put(VISITOR, state, cache.epoch)
    assert cache.get(VISITOR) == state
    cache.drop([], [7])  # its contact's content changed
    assert cache.get(VISITOR) is None
