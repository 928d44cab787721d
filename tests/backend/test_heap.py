"""While an app serves, what it built at start-up is out of the collector's sight; after, not."""

from __future__ import annotations

import gc

from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from backend.heap import frozen_heap


@get("/count", sync_to_thread=False)
def _frozen_count() -> int:
    return gc.get_freeze_count()


async def test_the_heap_is_frozen_while_the_app_serves_and_given_back_after() -> None:
    assert gc.get_freeze_count() == 0
    async with AsyncTestClient(Litestar([_frozen_count], lifespan=[frozen_heap])) as client:
        assert (await client.get("/count")).json() > 1000  # the modules, the app, the test run
    assert gc.get_freeze_count() == 0
