"""Visitor changes reach every process through Redis, so each may remember decisions longer."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence

from backend.personalization.feed import ChangeFeed
from backend.personalization.recent import changed, everything_changed, use_feed

Heard = tuple[list[str], list[int], bool]
WAIT_SECONDS = 10


async def test_a_change_in_one_process_reaches_the_others(redis_url: str) -> None:
    channel = f"tf-test-{secrets.token_hex(4)}"  # not another test run's messages
    heard: asyncio.Queue[Heard] = asyncio.Queue()

    def apply(visitors: Sequence[str], contacts: Sequence[int], everything: bool) -> None:
        heard.put_nowait((list(visitors), list(contacts), everything))

    web = ChangeFeed(redis_url, channel)
    web.listen(apply)
    worker = ChangeFeed(redis_url, channel)
    try:
        # On subscribing it forgets everything: it may have missed changes before.
        assert await asyncio.wait_for(heard.get(), WAIT_SECONDS) == ([], [], True)
        use_feed(worker)  # what `touchflow worker` does with REDIS_URL
        changed(visitor_ids=["v-delivered-to-0001", None], contact_ids=[7])
        assert await asyncio.wait_for(heard.get(), WAIT_SECONDS) == (
            ["v-delivered-to-0001"],
            [7],
            False,
        )
        everything_changed()  # a marketer's edit
        assert await asyncio.wait_for(heard.get(), WAIT_SECONDS) == ([], [], True)
        # A process does not hear its own changes back (it applied them already).
        use_feed(web)
        changed(visitor_ids=["v-own-change-00001"])
        use_feed(worker)
        changed(visitor_ids=["v-after-own-00001"])
        assert await asyncio.wait_for(heard.get(), WAIT_SECONDS) == (
            ["v-after-own-00001"],
            [],
            False,
        )
    finally:
        use_feed(None)
        await worker.close()
        await web.close()
