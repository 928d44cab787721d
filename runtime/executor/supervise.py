"""Keep an arq worker working through Redis outages (DESIGN principle 9).

``serve`` runs an arq ``Worker`` until it is told to stop. When Redis goes away
(the worker's poll or its start-up fails with a connection error) it does not
exit: it logs the outage once, lets the jobs in progress finish, and runs
``Runtime.work`` itself from the database every sweep interval, so journeys
keep stepping and messages keep leaving. Meanwhile it tries Redis again with
back-off (1 s, 2 s, 4 s ... 30 s) and, once Redis answers, logs that once and
starts a fresh arq worker. Only SIGINT/SIGTERM (or ``stop``) end it.

Redis going away does not always look like a connection error: a connection
lost while a command WATCHes a key (arq's enqueue and job start do) surfaces as
redis-py's ``WatchError``, raised while handling the ``ConnectionError``
("Connection closed by server"). So an error counts as an outage when any
exception in its chain is one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

from arq.worker import Worker
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from runtime.doorbell import LocalDoorbell
from runtime.engine import Runtime
from runtime.executor.arq_worker import JOB_BUDGET_SECONDS, worker_settings
from runtime.settings import RuntimeSettings

__all__ = ["MAX_BACKOFF_SECONDS", "serve"]

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0
# How long a stopping worker lets its running jobs finish before cancelling them.
STOP_GRACE_SECONDS = JOB_BUDGET_SECONDS + 15
_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


def _redis_down(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from or while handling, is Redis away."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, _REDIS_DOWN):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


async def _drop_pool(worker: Worker) -> None:
    pool = getattr(worker, "_pool", None)
    if pool is not None:
        with contextlib.suppress(Exception):
            await pool.aclose(close_connection_pool=True)
        worker._pool = None  # arq has no public way to forget a dead pool


async def _finish_jobs(worker: Worker, grace: float) -> None:
    tasks = [t for t in worker.tasks.values() if not t.done()]
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _run_worker(worker: Worker, stop: asyncio.Event) -> BaseException | None:
    """Run ``worker`` until it fails or ``stop`` is set; returns the failure, if any."""
    main = asyncio.create_task(worker.main())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({main, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not main.done():
        worker.allow_pick_jobs = False
        await _finish_jobs(worker, STOP_GRACE_SECONDS)
        main.cancel()
    try:
        await main
    except asyncio.CancelledError:
        failure: BaseException | None = None
    except Exception as exc:
        failure = exc
    else:
        failure = None
    # A job whose end could not be written to Redis still did its database work.
    await _finish_jobs(worker, STOP_GRACE_SECONDS)
    if failure is None:
        with contextlib.suppress(*_REDIS_DOWN):
            await worker.pool.delete(worker.health_check_key)
    await _drop_pool(worker)
    return failure


async def _redis_answers(url: str) -> bool:
    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()


async def _without_redis(runtime: Runtime, settings: RuntimeSettings, stop: asyncio.Event) -> None:
    """Work from the database until Redis answers again (or ``stop``)."""
    assert settings.redis_url is not None
    bell = LocalDoorbell()
    runtime.doorbell = bell  # rings in this process wake the database loop instead
    delay = 1.0
    next_try = time.monotonic() + delay
    started = time.monotonic()
    while not stop.is_set():
        try:
            await runtime.work(budget_seconds=JOB_BUDGET_SECONDS)
        except Exception:
            log.exception("work from the database failed; trying again at the next sweep")
        if time.monotonic() >= next_try:
            if await _redis_answers(settings.redis_url):
                log.warning(
                    "Redis is back after %.0f s: taking jobs from it again",
                    time.monotonic() - started,
                )
                return
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)
            next_try = time.monotonic() + delay
        pause = max(0.0, min(settings.sweep_interval_seconds, next_try - time.monotonic()))
        stopped = asyncio.create_task(stop.wait())
        rung = asyncio.create_task(bell.wait(pause))
        await asyncio.wait({stopped, rung}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        rung.cancel()


async def serve(
    settings: RuntimeSettings,
    runtime: Runtime,
    *,
    stop: asyncio.Event | None = None,
    **worker_kwargs: Any,
) -> None:
    """Run arq workers on ``runtime`` until SIGINT/SIGTERM or ``stop``, outliving Redis outages.

    ``worker_kwargs`` go to ``worker_settings`` (``max_jobs``, ``poll_delay``...).
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        kwargs = worker_settings(settings, runtime=runtime, **worker_kwargs)
        kwargs["handle_signals"] = False
        failure = await _run_worker(Worker(**kwargs), stop)
        if failure is None and (stop.is_set() or kwargs["burst"]):
            return
        if failure is None:  # arq ended without an error or a stop: not an end, start afresh
            log.warning("the arq worker stopped by itself; starting a fresh one")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            continue
        if not _redis_down(failure):
            raise failure
        log.warning(
            "Redis is unreachable (%s: %s): stepping journeys and delivering from the "
            "database every %s s until it is back",
            type(failure).__name__,
            failure,
            settings.sweep_interval_seconds,
        )
        await _without_redis(runtime, settings, stop)
