"""Wiring between the web process and the runtime engine (runtime/).

Every app gets a ``Runtime`` at ``app.state.runtime`` (handlers ingest events
through it). How its doorbell rings depends on the deployment:

- ``touchflow serve`` runs a ``LocalExecutor`` in the web process;
- ``touchflow serve --no-worker`` with ``REDIS_URL`` rings arq workers
  (``touchflow worker``), connecting to Redis on the first ring so the web
  app starts, and ``/healthz`` reports, even while Redis is down;
- without either, nothing rings and journeys wait for a worker's sweep.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import backend.i18n  # noqa: F401  (installs the translators: node messages, email footers)
from backend.db import create_engine, create_sessionmaker
from backend.personalization.delivery import WebContentDeliverer
from backend.personalization.feed import ChangeFeed
from backend.personalization.recent import use_feed
from backend.settings import Settings
from nodes.sdk import Clock
from runtime.delivery import Deliverer
from runtime.engine import build_runtime
from runtime.executor.arq_worker import ArqDoorbell, arq_doorbell, run_worker
from runtime.executor.local import LocalExecutor

log = logging.getLogger("touchflow.worker")


class LazyArqDoorbell:
    """An arq doorbell that connects on its first ring and retries on the next after a failure."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._bell: ArqDoorbell | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._warned = False

    def ring(self) -> None:
        if self._bell is not None:
            self._bell.ring()
        elif self._connecting is None or self._connecting.done():
            self._connecting = asyncio.get_running_loop().create_task(self._connect_and_ring())

    async def _connect_and_ring(self) -> None:
        try:
            self._bell = await arq_doorbell(self._settings)
        except Exception as exc:  # the periodic sweep still finds the work
            if not self._warned:  # once per outage, not once per ring
                log.warning("cannot reach Redis to wake the workers: %s", exc)
            self._warned = True
            return
        self._warned = False
        self._bell.ring()

    async def close(self) -> None:
        if self._connecting is not None:
            await self._connecting
        if self._bell is not None:
            await self._bell.settle()
            await self._bell.redis.aclose()


def runtime_lifespan(app: Litestar) -> AbstractAsyncContextManager[None]:
    """Lifespan hook: build ``app.state.runtime`` and run or wake its executor."""

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        settings: Settings = app.state.settings
        runtime = build_runtime(
            settings,
            sessions=app.state.sessions,
            clock=app.state.clock,
            deliverers=extra_deliverers(app.state.sessions, app.state.clock),
        )
        app.state.runtime = runtime
        if app.state.run_executor:
            log.info("running the in-process executor")
            async with LocalExecutor(runtime):
                yield
        elif settings.redis_url:
            bell = LazyArqDoorbell(settings)
            runtime.doorbell = bell
            try:
                yield
            finally:
                await bell.close()
        else:
            yield

    return lifespan()


def extra_deliverers(
    sessions: async_sessionmaker[AsyncSession], clock: Clock | None = None
) -> dict[str, Deliverer]:
    """Channels the backend adds to the runtime's built-in ones (also installed as the
    ``web_content`` channel plugin, which ``build_runtime`` finds on its own)."""
    return {"web_content": WebContentDeliverer(sessions, clock)}


def run_arq_worker(settings: Settings) -> None:
    """Blocking: the ``touchflow worker`` command."""
    sessions = create_sessionmaker(create_engine(settings.database_url))
    if settings.redis_url:
        # Content this worker delivers shows in the web processes at once.
        use_feed(ChangeFeed(settings.redis_url))
    runtime = build_runtime(settings, sessions=sessions, deliverers=extra_deliverers(sessions))
    run_worker(settings, runtime=runtime, owns_runtime=True)
