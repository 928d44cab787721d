"""End to end, the canonical flow's first email through arq workers (printed, never asserted).

TOUCHFLOW_BENCH_E2E (default 5,000) ``form.submitted`` events are accepted in
batches of 1,000 (each batch's commit rings the doorbell, as the web app's
does) and taken by 2 arq worker processes with the pooled SMTP sender, to the
confirmations accepted by an SMTP sink (aiosmtpd in its own process). Printed:

- emails/s from the first accepted batch to the last email at the sink, and
  beside it the pooled-SMTP ceiling measured in the same run: the same number
  of messages sent straight through the same pool to the same sink, with no
  database; the ratio of the two;
- how the burst was split into jobs: arq jobs run, jobs that found work,
  emails per working job;
- CPU per email of the worker processes (user + system, from ``getrusage``
  in each worker, start-up excluded): wall-clock figures on a shared machine
  are noisy, CPU time is what the changes cut.

The burst size and worker count can be raised (``TOUCHFLOW_BENCH_E2E=20000``)
to see how many jobs a burst of 20,000 entries makes.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from backend.db import create_engine, create_sessionmaker
from backend.settings import Settings
from runtime import flows
from runtime.engine import Runtime
from tests.support.net import free_port
from tests.support.stores import REDIS_URL, fresh_database

E2E = int(os.environ.get("TOUCHFLOW_BENCH_E2E", "5000"))
E2E_WORKERS = int(os.environ.get("TOUCHFLOW_BENCH_E2E_WORKERS", "2"))
# A directory: each worker writes its cProfile statistics there (worker-<pid>.prof).
PROFILE_DIR = os.environ.get("TOUCHFLOW_BENCH_PROFILE", "")
ACCEPT_BATCH = 1000

FIRST_EMAIL_GRAPH = {
    "nodes": [
        {"id": "form", "type": "trigger.event", "config": {"event_type": "form.submitted"}},
        {
            "id": "confirm",
            "type": "action.email",
            "config": {
                "subject": "Your download, {{ first_name }}",
                "body": "Here it is.",
                "category": "transactional",
            },
        },
    ],
    "edges": [{"source": "form", "port": "next", "target": "confirm"}],
    "settings": {},
}


def _sink(port: int, ready: Any, stop: Any, received: Any) -> None:
    from aiosmtpd.controller import Controller

    class Count:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            with received.get_lock():
                received.value += 1
            return "250 OK"

    controller = Controller(Count(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


def _settings(url: str, port: int, queue: str = "") -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url=url,
        secret_key="bench",
        smtp_host="127.0.0.1",
        smtp_port=port,
        mail_from="hej@example.se",
        quiet_hours="",
        redis_url=REDIS_URL,
        queue_name=queue or "touchflow-bench",
        sweep_interval_seconds=5,
    )


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _arq_worker(url: str, port: int, queue: str, ready: Any, stop: Any, results: Any) -> None:
    """One ``touchflow worker``: an arq worker on its own runtime; reports its jobs and CPU."""
    from arq.worker import Worker

    from runtime.engine import WorkReport, build_runtime
    from runtime.executor.arq_worker import worker_settings
    from runtime.messaging.channels import close_deliverers

    async def run() -> None:
        engine = create_engine(url, pool_size=4)
        settings = _settings(url, port, queue)
        rt = build_runtime(settings, sessions=create_sessionmaker(engine))
        counts = {"work_calls": 0, "working": 0, "sent": 0}
        work = rt.work

        async def counted(**kwargs: Any) -> WorkReport:  # the bench's own tally of engine runs
            report = await work(**kwargs)
            counts["work_calls"] += 1
            counts["working"] += bool(report.steps or report.sent)
            counts["sent"] += report.sent
            return report

        rt.work = counted  # type: ignore[method-assign]
        worker = Worker(**worker_settings(settings, runtime=rt))
        task = asyncio.create_task(worker.async_run())
        await asyncio.sleep(1.0)  # start-up and the start-up sweep
        profile = None
        if PROFILE_DIR:
            import cProfile

            profile = cProfile.Profile(time.process_time)  # CPU, not a shared wall clock
            profile.enable()
        started = _cpu()
        ready.set()
        await asyncio.to_thread(stop.wait)
        cpu = _cpu() - started
        if profile is not None:
            profile.disable()
            profile.dump_stats(os.path.join(PROFILE_DIR, f"worker-{os.getpid()}.prof"))
        jobs = worker.jobs_complete + worker.jobs_failed
        task.cancel()
        await worker.close()
        await close_deliverers(rt.deliverers)
        await engine.dispose()
        results.put({"jobs": jobs, "cpu": cpu, **counts})

    asyncio.run(run())


async def _pooled_ceiling(port: int, count: int, received: Any) -> float:
    from runtime.delivery import Outgoing, concurrency_of
    from runtime.delivery.email import EmailDeliverer
    from runtime.messaging.channels import link_signer

    settings = _settings("", port)
    senders = [
        EmailDeliverer(
            hostname="127.0.0.1",
            port=port,
            sender=settings.mail_from,
            pool_size=settings.smtp_pool_size,
            links=link_signer(settings),
        )
        for _ in range(E2E_WORKERS)
    ]
    # As many in flight as the outbox lets each worker's deliverer take.
    gate = asyncio.Semaphore(concurrency_of(senders[0]) * E2E_WORKERS)

    async def one(n: int) -> None:
        message = Outgoing(
            id=n,
            idempotency_key=f"ceiling-{n}",
            channel="email",
            payload={"to": f"c{n}@example.se", "subject": "Your download", "text": "Here it is."},
            contact_id=n,
        )
        async with gate:
            await senders[n % E2E_WORKERS].deliver(message)

    before = received.value
    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(count)))
    elapsed = time.perf_counter() - started
    for sender in senders:
        await sender.aclose()
    assert received.value - before == count
    return count / elapsed


async def _accept(rt: Runtime, sessions: Any) -> float:
    """Accept the events in batches of 1,000, as the track endpoint does; returns seconds."""
    from backend.contacts.schemas import TrackIn
    from backend.contacts.track import track_many

    started = time.perf_counter()
    for start in range(0, E2E, ACCEPT_BATCH):
        items: list[Any] = [
            TrackIn(
                type="form.submitted",
                email=f"lead{n}@example.se",
                properties={"form": "download"},
                idempotency_key=f"form-{n}",
            )
            for n in range(start, min(start + ACCEPT_BATCH, E2E))
        ]
        async with sessions() as session, session.begin():
            await track_many(session, rt, items, source="bench")
    return time.perf_counter() - started


async def _first_email(url: str) -> None:
    import secrets

    from arq.connections import RedisSettings, create_pool

    from nodes.sdk import discover
    from runtime.executor.arq_worker import ArqDoorbell

    ctx = mp.get_context("spawn")
    port = free_port()
    queue = f"touchflow-bench-{secrets.token_hex(4)}"
    ready, stop, received = ctx.Event(), ctx.Event(), ctx.Value("i", 0)
    sink = ctx.Process(target=_sink, args=(port, ready, stop, received), daemon=True)
    sink.start()
    ready.wait(30)
    engine = create_engine(url, pool_size=4)
    sessions = create_sessionmaker(engine)
    redis = await create_pool(RedisSettings.from_dsn(REDIS_URL))
    rt = Runtime(sessions=sessions, registry=discover(), settings=_settings(url, port, queue))
    rt.doorbell = ArqDoorbell(redis, queue)
    async with sessions() as session, session.begin():
        flow = await flows.create_flow(session, "first email", graph=FIRST_EMAIL_GRAPH)
        await flows.publish(session, flow.id, rt.registry)
    halt, results = ctx.Event(), ctx.Queue()
    readies = [ctx.Event() for _ in range(E2E_WORKERS)]
    workers = [
        ctx.Process(target=_arq_worker, args=(url, port, queue, r, halt, results), daemon=True)
        for r in readies
    ]
    for worker in workers:
        worker.start()
    for r in readies:
        r.wait(120)
    try:
        started = time.perf_counter()
        accepted = await _accept(rt, sessions)
        while received.value < E2E:
            if time.perf_counter() - started > 1800:
                raise RuntimeError(f"only {received.value} of {E2E} emails arrived")
            await asyncio.sleep(0.05)
        e2e_s = time.perf_counter() - started
    finally:
        halt.set()
        reports = [results.get(timeout=120) for _ in workers]
        for worker in workers:
            worker.join(60)
    ceiling = await _pooled_ceiling(port, E2E, received)
    stop.set()
    sink.join(30)
    await redis.aclose()
    await engine.dispose()
    rate = E2E / e2e_s
    jobs = sum(r["jobs"] for r in reports)
    working = sum(r["working"] for r in reports)
    sent = sum(r["sent"] for r in reports)
    cpu = sum(r["cpu"] for r in reports)
    print(
        f"first email end to end ({E2E:,} form.submitted events in batches of {ACCEPT_BATCH:,}, "
        f"{E2E_WORKERS} arq worker processes): accepted in {accepted:.1f} s, last email at "
        f"{e2e_s:.1f} s = {rate:,.0f} emails/s; pooled SMTP ceiling to the same sink "
        f"{ceiling:,.0f} emails/s; ratio {rate / ceiling:.0%}"
    )
    print(
        f"jobs: {jobs:,} arq jobs run, {working:,} found work "
        f"({sum(r['work_calls'] for r in reports):,} engine runs), "
        f"{sent / max(working, 1):,.0f} emails per working job"
    )
    print(
        f"worker CPU (user + system, both workers): {cpu:.1f} s = "
        f"{cpu * 1000 / max(sent, 1):.2f} ms per email"
    )


async def run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with fresh_database("postgresql", Path(tmp)) as url:
            await _first_email(url)


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
