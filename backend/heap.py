"""The collector leaves what the app built at start-up alone while it serves.

A full garbage collection walks every tracked object of the process: the
app's routes, models, compiled templates and SQLAlchemy metadata, which live
as long as the process. A 1,000-event batch allocates enough to set off
several, and they cost a quarter of its CPU (tests/bench/bench_ingest.py,
GC time measured with ``gc.callbacks``). ``gc.freeze`` after start-up moves
what exists then out of the collector's sight; ``gc.unfreeze`` at shut-down
gives it back, so an app created and stopped many times (the tests) keeps
nothing, not even garbage that was waiting for a collection when it froze.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from litestar import Litestar


def frozen_heap(app: Litestar) -> AbstractAsyncContextManager[None]:
    """Lifespan hook, innermost: freeze once everything else has started."""

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()

    return lifespan()
