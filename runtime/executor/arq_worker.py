"""arq workers: ``touchflow worker`` runs ``run_worker(settings, runtime)``.

A job never names a customer: ``touchflow.work`` means "there is work", and
the worker claims batches of due journeys and messages from the database
until none is left. The same function runs as a cron sweep every
``sweep_interval_seconds`` (rounded to whole seconds), so jobs lost from
Redis (FLUSHALL, a restart) cost latency, never work. ``run_worker`` keeps
working from the database while Redis is away (``runtime.executor.supervise``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from arq import cron, func
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker

from runtime.engine import Runtime
from runtime.messaging.channels import close_deliverers
from runtime.settings import RuntimeSettings

__all__ = [
    "JOB_NAME",
    "ArqDoorbell",
    "JobStats",
    "arq_doorbell",
    "create_worker",
    "run_worker",
    "worker_settings",
]

log = logging.getLogger(__name__)

JOB_NAME = "touchflow.work"
SWEEP_NAME = "touchflow.sweep"
# A job hands over to a fresh one after this long, so one busy job never hits
# arq's job timeout and other queued jobs interleave.
JOB_BUDGET_SECONDS = 30.0


class ArqDoorbell:
    """Rings by enqueueing a ``touchflow.work`` job; rings in quick succession coalesce.

    While one enqueue is in flight further rings are dropped: the job it
    creates starts after they happened, so it sees their committed work.
    """

    def __init__(self, redis: ArqRedis, queue_name: str) -> None:
        self.redis = redis
        self.queue_name = queue_name
        self._pending: asyncio.Task[None] | None = None
        self._failing = False

    def ring(self) -> None:
        if self._pending is not None and not self._pending.done():
            return
        self._pending = asyncio.get_running_loop().create_task(self._enqueue())

    async def _enqueue(self) -> None:
        try:
            await self.redis.enqueue_job(JOB_NAME, _queue_name=self.queue_name)
        except Exception as exc:
            if not self._failing:  # once per outage, not once per ring
                log.warning("could not ring the workers (%s); the sweep will find the work", exc)
            self._failing = True
        else:
            self._failing = False

    async def settle(self) -> None:
        """Wait for a ring in flight (tests, shutdown)."""
        if self._pending is not None:
            await self._pending


async def arq_doorbell(settings: RuntimeSettings) -> ArqDoorbell:
    """A doorbell for web processes that hand work to arq workers."""
    if not settings.redis_url:
        raise ValueError("REDIS_URL is not set: arq workers need Redis")
    redis = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    return ArqDoorbell(redis, settings.queue_name)


@dataclass
class JobStats:
    """What this worker's jobs did: how many ran, how many found work, what they did."""

    jobs: int = 0  # jobs started (rings and sweeps)
    folded: int = 0  # arrived while another job of this worker was working: handed over to it
    idle: int = 0  # ran and found nothing due
    steps: int = 0
    sent: int = 0
    running: bool = field(default=False, repr=False)
    again: bool = field(default=False, repr=False)

    @property
    def working(self) -> int:
        """Jobs that ran the engine and found work."""
        return self.jobs - self.folded - self.idle


async def _work(ctx: dict[str, Any]) -> dict[str, int]:
    """One job: work until nothing is due. While it runs, further jobs of this worker only
    say "look again" and return, so a burst of rings is one job taking full batches here,
    not several concurrent jobs splitting each batch into slices."""
    runtime: Runtime = ctx["runtime"]
    stats: JobStats = ctx.setdefault("stats", JobStats())
    stats.jobs += 1
    if stats.running:
        stats.again = True
        stats.folded += 1
        return {"steps": 0, "sent": 0, "folded": 1}
    stats.running = True
    deadline = time.monotonic() + ctx.get("job_budget", JOB_BUDGET_SECONDS)
    steps = sent = 0
    try:
        while True:
            stats.again = False
            report = await runtime.work(budget_seconds=max(deadline - time.monotonic(), 0.001))
            steps += report.steps
            sent += report.sent
            # A job that arrived meanwhile may stand for work committed after this job's
            # last look: look once more (the budget still bounds the job).
            if not stats.again or time.monotonic() >= deadline:
                break
    finally:
        stats.running = False
    stats.steps += steps
    stats.sent += sent
    if not steps and not sent:
        stats.idle += 1
    return {"steps": steps, "sent": sent, "folded": 0}


async def _startup(ctx: dict[str, Any]) -> None:
    settings: RuntimeSettings = ctx["settings"]
    ctx["runtime"].doorbell = ArqDoorbell(ctx["redis"], settings.queue_name)


async def _close_runtime(runtime: Runtime) -> None:
    await close_deliverers(runtime.deliverers)
    if runtime.bound_engine is not None:
        await runtime.bound_engine.dispose()


async def _shutdown(ctx: dict[str, Any]) -> None:
    runtime: Runtime | None = ctx.get("runtime")
    if runtime is not None and ctx.get("owns_runtime"):
        await _close_runtime(runtime)


def worker_settings(
    settings: RuntimeSettings,
    *,
    runtime: Runtime,
    owns_runtime: bool = False,
    burst: bool = False,
    max_jobs: int = 4,
    poll_delay: float = 0.05,
    job_budget: float = JOB_BUDGET_SECONDS,
) -> dict[str, Any]:
    """Keyword arguments for ``arq.worker.Worker``.

    ``runtime`` is the caller's (built with ``build_runtime``; tests share theirs);
    ``owns_runtime`` says the worker closes its connections and channels when it stops.
    """
    if not settings.redis_url:
        raise ValueError("REDIS_URL is not set: arq workers need Redis")
    step = max(1, round(settings.sweep_interval_seconds))
    return {
        "functions": [func(_work, name=JOB_NAME, keep_result=0)],
        "cron_jobs": [
            cron(
                _work,
                name=SWEEP_NAME,
                second=set(range(0, 60, step)),
                run_at_startup=True,
                unique=True,
                keep_result=0,
            )
        ],
        "on_startup": _startup,
        "on_shutdown": _shutdown,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": settings.queue_name,
        "burst": burst,
        "max_jobs": max_jobs,
        # Latency from a ring to the job starting is at most this poll delay.
        "poll_delay": poll_delay,
        "keep_result": 0,
        "ctx": {
            "settings": settings,
            "runtime": runtime,
            "owns_runtime": owns_runtime,
            "job_budget": job_budget,
            "stats": JobStats(),
        },
    }


def create_worker(settings: RuntimeSettings, **kwargs: Any) -> Worker:
    return Worker(**worker_settings(settings, **kwargs))


def run_worker(
    settings: RuntimeSettings,
    runtime: Runtime,
    *,
    owns_runtime: bool = False,
    **kwargs: Any,
) -> None:
    """Run an arq worker on ``runtime`` until SIGINT/SIGTERM, through Redis outages.

    What ``touchflow worker`` calls; ``owns_runtime`` says the worker closes the
    runtime's connections and channels when it stops.
    """
    from runtime.executor.supervise import serve

    async def main() -> None:
        # What exists now (modules, models, the runtime) lives as long as the process: out of
        # the collector's sight, a full collection no longer walks it several times a batch
        # (a fifth of a worker's CPU per step went to them). Given back when the worker stops.
        gc.freeze()
        try:
            await serve(settings, runtime, **kwargs)
        finally:
            gc.unfreeze()
            if owns_runtime:
                await _close_runtime(runtime)

    asyncio.run(main())
