"""The in-process executor: one process for a laptop (DESIGN principle 9).

A background task runs ``Runtime.work`` whenever the doorbell rings (an
event woke a journey, a flow enrolled customers) and at least every sweep
interval (timers coming due, retries, deliveries to retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from runtime.doorbell import LocalDoorbell
from runtime.engine import Runtime

__all__ = ["LocalExecutor"]

log = logging.getLogger(__name__)


class LocalExecutor:
    """Run the engine in this process's event loop. Use as ``async with LocalExecutor(rt):``.

    Installs its doorbell on the runtime, so ``runtime.ingest`` wakes it.
    ``workers`` > 1 runs that many loops; they split due work by claims.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        sweep_interval: float | None = None,
        workers: int = 1,
        budget_seconds: float = 5.0,
    ) -> None:
        self.runtime = runtime
        self.bell = LocalDoorbell()
        runtime.doorbell = self.bell
        self.sweep_interval = sweep_interval or runtime.settings.sweep_interval_seconds
        self.workers = workers
        self.budget_seconds = budget_seconds
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._loop(), name=f"touchflow-executor-{n}")
                for n in range(self.workers)
            ]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def running(self) -> bool:
        return any(not task.done() for task in self._tasks)

    async def __aenter__(self) -> LocalExecutor:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _loop(self) -> None:
        while True:
            try:
                await self.runtime.work(budget_seconds=self.budget_seconds)
            except Exception:
                # A database hiccup must not kill the executor; the sweep retries.
                log.exception("runtime work failed; retrying at the next sweep")
            await self.bell.wait(self.sweep_interval)
