"""Runtime throughput, memory and wake latency on PostgreSQL (figures printed, never asserted).

Set TOUCHFLOW_BENCH_N for a smaller run (default 100,000 contacts). Prints:

- steps/s enrolling (set-based) and walking N contacts through a 5-node flow
  with 1 and 2 worker processes;
- the raw batched-SQL ceiling measured in the same run: the same history rows,
  cursors and conversions the engine writes, with plain asyncpg statements
  (``unnest`` arrays, 500 journeys per transaction), with 1, 2 and 4 connections;
- peak RSS of a worker parking N/10 and N journeys in a wait;
- event-to-wake latency p50/p99 with an arq worker process running;
- the engine with 1, 2 and 4 worker processes beside the raw ceiling with
  as many connections (on a 2-core machine the curve flattens at 2), with
  the CPU seconds per 1,000 steps of the worker processes and of the
  PostgreSQL backends serving them (read from /proc: steadier than wall
  clock on a shared machine), and the journey row updates per journey
  walked (from pg_stat_user_tables: one per claim), and the same ratio by
  CPU: the ceiling's backend CPU per row against the engine's worker and
  backend CPU per step (what the throughput ratio tends to when the cores
  are saturated, as on a shared machine);
- (the canonical flow's first email end to end is ``bench_first_email``).
"""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing as mp
import os
import resource
import secrets
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import BaseModel
from sqlalchemy import select, text, true

from backend.db import create_engine, create_sessionmaker
from backend.models import Contact, Journey
from backend.settings import Settings
from nodes.sdk import (
    Context,
    EmptyConfig,
    EventWait,
    Family,
    NodeRegistry,
    NodeType,
    Outcome,
    Port,
    Trigger,
    Wait,
)
from runtime import flows
from runtime.engine import Runtime
from tests.support.stores import REDIS_URL, fresh_database

N = int(os.environ.get("TOUCHFLOW_BENCH_N", "100000"))
BATCH = int(os.environ.get("TOUCHFLOW_BENCH_BATCH", "500"))
LATENCY_EVENTS = int(os.environ.get("TOUCHFLOW_BENCH_EVENTS", "300"))
WORKER_COUNTS = (1, 2, 4)
FLOW_NODES = 5


class EnterConfig(BaseModel):
    event_type: str = "bench.start"


class Enter(NodeType[EnterConfig]):
    type_id = "bench.enter"
    name = "Enter"
    family = Family.trigger
    config_model = EnterConfig

    @classmethod
    def trigger(cls, config: BaseModel) -> Trigger:
        assert isinstance(config, EnterConfig)
        return Trigger(event_type=config.event_type)

    async def run(self, ctx: Context[EnterConfig]) -> Outcome:
        return Outcome.go()


class Check(NodeType[EmptyConfig]):
    type_id = "bench.check"
    name = "Check"
    family = Family.condition
    ports = (Port("yes"), Port("no"))

    async def run(self, ctx: Context[EmptyConfig]) -> Outcome:
        return Outcome.go("yes" if ctx.profile.attributes.get("vip") else "no")


class Mark(NodeType[EmptyConfig]):
    type_id = "bench.mark"
    name = "Mark"
    family = Family.action

    async def run(self, ctx: Context[EmptyConfig]) -> Outcome:
        return Outcome.go(data={ctx.journey.node_id: True})


class Finish(NodeType[EmptyConfig]):
    type_id = "bench.finish"
    name = "Finish"
    family = Family.goal
    ports = ()

    async def run(self, ctx: Context[EmptyConfig]) -> Outcome:
        return Outcome.finish("done")


class Park(NodeType[EmptyConfig]):
    """Waits two days, or until a "bench.ping" event for this customer."""

    type_id = "bench.park"
    name = "Park"
    family = Family.wait
    ports = (Port("event"), Port("timeout"))

    async def run(self, ctx: Context[EmptyConfig]) -> Outcome:
        if ctx.wake is not None:
            return Outcome.go("event" if ctx.wake.reason == "event" else "timeout")
        return Outcome.park(Wait(until=ctx.now + timedelta(days=2), event=EventWait("bench.ping")))


def registry() -> NodeRegistry:
    reg = NodeRegistry()
    for node_type in (Enter, Check, Mark, Finish, Park):
        reg.add(node_type)
    return reg


def _graph(nodes: list[tuple[str, str]], edges: list[tuple[str, str, str]]) -> dict[str, Any]:
    return {
        "nodes": [{"id": i, "type": t} for i, t in nodes],
        "edges": [{"source": s, "port": p, "target": d} for s, p, d in edges],
    }


WALK_GRAPH = _graph(
    [
        ("enter", "bench.enter"),
        ("check", "bench.check"),
        ("mark", "bench.mark"),
        ("score", "bench.mark"),
        ("finish", "bench.finish"),
    ],
    [
        ("enter", "next", "check"),
        ("check", "yes", "mark"),
        ("check", "no", "mark"),
        ("mark", "next", "score"),
        ("score", "next", "finish"),
    ],
)
PARK_GRAPH = _graph(
    [("enter", "bench.enter"), ("park", "bench.park"), ("finish", "bench.finish")],
    [("enter", "next", "park"), ("park", "event", "finish"), ("park", "timeout", "finish")],
)


def _settings(url: str, **extra: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url=url,
        secret_key="bench",
        batch_size=BATCH,
        **extra,
    )


def _runtime(url: str, **extra: Any) -> Runtime:
    engine = create_engine(url, pool_size=4)
    return Runtime(
        sessions=create_sessionmaker(engine), registry=registry(), settings=_settings(url, **extra)
    )


# -- worker processes ------------------------------------------------------------------------


def _backend_cpu(pids: list[int]) -> float:
    """CPU seconds PostgreSQL backends have used so far (a local server's /proc; else NaN)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _walker(url: str, ready: Any, go: Any, results: Any) -> None:
    async def run() -> None:
        # Named, so the database backends that served this worker can be found (their CPU).
        name = f"bench-walker-{os.getpid()}"
        engine = create_engine(
            url, pool_size=4, connect_args={"server_settings": {"application_name": name}}
        )
        rt = Runtime(
            sessions=create_sessionmaker(engine), registry=registry(), settings=_settings(url)
        )
        async with rt.sessions() as session:
            await session.execute(select(1))
        gc.freeze()  # as ``touchflow worker`` does once started (arq_worker.run_worker)
        ready.set()
        go.wait()
        steps = 0
        cpu = time.process_time()
        while True:
            report = await rt.step()
            steps += report.steps
            if report.claimed == 0:
                break
        cpu = time.process_time() - cpu
        async with rt.sessions() as session:
            pids = await session.execute(
                text("SELECT pid FROM pg_stat_activity WHERE application_name = :n"), {"n": name}
            )
            db_cpu = _backend_cpu(list(pids.scalars()))
        results.put(
            {
                "steps": steps,
                "cpu_s": cpu,
                "db_cpu_s": db_cpu,
                "finished": time.time(),
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )

    asyncio.run(run())


def _walk_with_processes(url: str, workers: int) -> tuple[float, list[dict[str, Any]]]:
    ctx = mp.get_context("spawn")
    go, results = ctx.Event(), ctx.Queue()
    readies = [ctx.Event() for _ in range(workers)]
    procs = [ctx.Process(target=_walker, args=(url, r, go, results)) for r in readies]
    for proc in procs:
        proc.start()
    for ready in readies:
        ready.wait(120)
    started = time.time()
    go.set()
    reports = [results.get(timeout=3600) for _ in procs]
    for proc in procs:
        proc.join()
    return max(r["finished"] for r in reports) - started, reports


def _arq_worker(url: str, queue: str) -> None:
    from runtime.executor.arq_worker import create_worker

    settings = _settings(url, redis_url=REDIS_URL, queue_name=queue, sweep_interval_seconds=5)
    rt = Runtime(
        sessions=create_sessionmaker(create_engine(url, pool_size=4)),
        registry=registry(),
        settings=settings,
    )
    create_worker(settings, runtime=rt).run()


# -- database set-up -------------------------------------------------------------------------


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _seed_contacts(url: str, count: int) -> None:
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute(
            """
            INSERT INTO contacts (email, first_name, last_name, attributes, tags, lifecycle_stage,
                                  consent, created_at, updated_at)
            SELECT 'c' || g || '@bench.test', 'C' || g, '',
                   jsonb_build_object('vip', g % 10 = 0), '[]'::jsonb, 'lead',
                   '{}'::jsonb, now(), now()
            FROM generate_series(1, $1::int) AS g
            """,
            count,
        )
        await conn.execute("ANALYZE contacts")
    finally:
        await conn.close()


async def _reset(url: str) -> None:
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute(
            "TRUNCATE steps, outbox_messages, journeys, events RESTART IDENTITY CASCADE"
        )
        await conn.execute("VACUUM ANALYZE journeys")
    finally:
        await conn.close()


async def _publish(rt: Runtime, graph: dict[str, Any], name: str) -> int:
    async with rt.sessions() as session, session.begin():
        flow = await flows.create_flow(session, name, graph=graph)
        await flows.publish(session, flow.id, rt.registry)
        return flow.id


async def _set_status(rt: Runtime, flow_id: int, status: str) -> None:
    async with rt.sessions() as session, session.begin():
        await session.execute(
            text("UPDATE flows SET status = :s WHERE id = :id"), {"s": status, "id": flow_id}
        )


async def _count(rt: Runtime, sql: str) -> int:
    async with rt.sessions() as session:
        return int(await session.scalar(text(sql)) or 0)


# -- measurements ----------------------------------------------------------------------------


# What the engine writes for each step of the walk flow (as ``bench_runtime`` stores it):
# node, type, status, port, input, output; ``check`` reads the contact's "vip" attribute.
def _step_values(vip: bool) -> list[tuple[str, str, str, str | None, str, str]]:
    seen = json.dumps({"seen": {"profile": {"attributes.vip": vip}}})
    return [
        ("enter", "bench.enter", "done", "next", "{}", "{}"),
        ("check", "bench.check", "done", "yes" if vip else "no", "{}", seen),
        ("mark", "bench.mark", "done", "next", "{}", json.dumps({"data": {"mark": True}})),
        ("score", "bench.mark", "done", "next", '{"mark": true}', '{"data": {"score": true}}'),
        ("finish", "bench.finish", "ended", None, '{"mark": true, "score": true}',
         '{"reason": "done"}'),
    ]  # fmt: skip


async def _ceiling(url: str, connections: int) -> tuple[float, float, float]:
    """History rows per second written by plain batched SQL (the engine's upper bound):
    walking alone, and with its own enrollment; the backends' CPU per row walking.

    It enrolls every contact with one ``INSERT ... SELECT`` (as ``enroll_audience``
    does, without the re-entry check), then writes what the engine writes for each
    journey (its five step rows with their inputs and outputs, its cursor, data and
    end, its goal's conversion), with plain ``unnest`` arrays in two round trips per
    batch besides ``BEGIN``/``COMMIT``: no claim, no lease, no Python per row.
    """
    await _reset(url)
    conn = await asyncpg.connect(_dsn(url))
    flow_version = await conn.fetchrow("SELECT id, flow_id FROM flow_versions LIMIT 1")
    enrolling = time.perf_counter()
    await conn.execute(
        """
        INSERT INTO journeys (flow_id, flow_version_id, contact_id, status, node_id, visits, data,
                              due_at, attempts, entered_at, updated_at, entry_key)
        SELECT $1, $2, id, 'active', 'enter', '{"enter": 1}'::jsonb, '{}'::jsonb, now(), 0,
               now(), now(), concat($1::bigint, ':c:', id)
        FROM contacts
        """,
        flow_version["flow_id"],
        flow_version["id"],
    )
    enroll_s = time.perf_counter() - enrolling
    rows = await conn.fetch(
        "SELECT j.id, (c.attributes->>'vip')::boolean AS vip"
        " FROM journeys j JOIN contacts c ON c.id = j.contact_id ORDER BY j.id"
    )
    await conn.close()
    journeys = [(r["id"], bool(r["vip"])) for r in rows]
    by_vip = {vip: _step_values(vip) for vip in (False, True)}
    visits = json.dumps({v[0]: 1 for v in by_vip[False]})
    data = json.dumps({"mark": True, "score": True})
    flow_id = flow_version["flow_id"]

    backend_cpu: list[float] = []

    async def part(chunk: list[tuple[int, bool]]) -> None:
        conn = await asyncpg.connect(_dsn(url))
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        cpu = _backend_cpu([pid])
        try:
            for start in range(0, len(chunk), BATCH):
                batch = chunk[start : start + BATCH]
                steps = [(j, *v) for j, vip in batch for v in by_vip[vip]]
                ids = [j for j, _ in batch]
                async with conn.transaction():
                    await conn.execute(
                        """
                        INSERT INTO steps (journey_id, node_id, visit, node_type, status, port,
                                           input, output, attempts, started_at, finished_at,
                                           duration_ms)
                        SELECT j, n, 1, t, s, p, i::jsonb, o::jsonb, 1, now(), now(), 0.01
                        FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],
                                    $5::text[], $6::text[], $7::text[]) AS v(j, n, t, s, p, i, o)
                        """,
                        *(list(column) for column in zip(*steps, strict=True)),
                    )
                    await conn.execute(
                        """
                        WITH converted AS (
                            INSERT INTO conversions (journey_id, flow_id, goal, label,
                                                     converted_at)
                            SELECT id, $4, 'finish', 'finish', now() FROM unnest($1::bigint[]) id
                        )
                        UPDATE journeys SET status = 'completed', node_id = 'finish',
                               visits = $2::jsonb, data = $3::jsonb, due_at = NULL,
                               exit_reason = 'done', entry_key = NULL, ended_at = now(),
                               updated_at = now()
                        FROM unnest($1::bigint[]) AS v(id)
                        WHERE journeys.id = v.id
                        """,
                        ids,
                        visits,
                        data,
                        flow_id,
                    )
            backend_cpu.append(_backend_cpu([pid]) - cpu)
        finally:
            await conn.close()

    share = -(-len(journeys) // connections)
    started = time.perf_counter()
    await asyncio.gather(*(part(journeys[i : i + share]) for i in range(0, len(journeys), share)))
    elapsed = time.perf_counter() - started
    rows = len(journeys) * FLOW_NODES
    return rows / elapsed, rows / (enroll_s + elapsed), 1000 * sum(backend_cpu) / rows


async def _engine_run(url: str, rt: Runtime, flow_id: int, workers: int) -> dict[str, float]:
    await _reset(url)
    started = time.perf_counter()
    enrolled = await rt.enroll_audience(flow_id, true())
    enroll_s = time.perf_counter() - started
    before = await _journey_writes(url)
    walk_s, reports = await asyncio.to_thread(_walk_with_processes, url, workers)
    after = await _journey_writes(url)
    steps = sum(r["steps"] for r in reports)
    done = await _count(rt, "SELECT count(*) FROM journeys WHERE status = 'completed'")
    stored = await _count(rt, "SELECT count(*) FROM steps")
    assert enrolled == N and done == N and steps == stored == N * FLOW_NODES, (
        enrolled,
        done,
        steps,
        stored,
    )
    return {
        "enroll_s": enroll_s,
        "walk_s": walk_s,
        "steps_per_s": steps / (enroll_s + walk_s),
        "walk_steps_per_s": steps / walk_s,
        # CPU of the worker processes alone: the shared machine's wall clock is noisy.
        "cpu_per_1000": 1000 * sum(r["cpu_s"] for r in reports) / steps,
        "db_cpu_per_1000": 1000 * sum(r["db_cpu_s"] for r in reports) / steps,
        "updates_per_journey": (after[0] - before[0]) / N,
        "hot_share": (after[1] - before[1]) / max(after[0] - before[0], 1),
    }


async def _journey_writes(url: str) -> tuple[int, int]:
    """Rows updated in ``journeys`` so far, and how many of them heap-only (PostgreSQL stats)."""
    conn = await asyncpg.connect(_dsn(url))
    try:
        # Statistics reach the view when a backend flushes them: wait for that.
        await asyncio.sleep(1.5)
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        row = await conn.fetchrow(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'journeys'"
        )
        return int(row["n_tup_upd"]), int(row["n_tup_hot_upd"])
    finally:
        await conn.close()


async def _rss_for_waiting(url: str, rt: Runtime, flow_id: int, count: int) -> float:
    await _reset(url)
    async with rt.sessions() as session, session.begin():
        await rt.enroll_audience(flow_id, Contact.id <= count)
    _, reports = await asyncio.to_thread(_walk_with_processes, url, 1)
    waiting = await _count(rt, "SELECT count(*) FROM journeys WHERE status = 'waiting'")
    assert waiting == count, (waiting, count)
    return float(reports[0]["rss_mb"])


async def _latency(url: str, rt: Runtime, flow_id: int) -> tuple[float, float, int]:
    from arq.connections import RedisSettings, create_pool

    from runtime.executor.arq_worker import ArqDoorbell

    await _reset(url)
    count = min(LATENCY_EVENTS, N)
    await rt.enroll_audience(flow_id, Contact.id <= count)
    await rt.drain()
    queue = f"touchflow-bench-{secrets.token_hex(4)}"
    redis = await create_pool(RedisSettings.from_dsn(REDIS_URL))
    rt.doorbell = ArqDoorbell(redis, queue)
    proc = mp.get_context("spawn").Process(target=_arq_worker, args=(url, queue))
    proc.start()
    try:
        await asyncio.sleep(3)  # let the worker start and run its start-up sweep
        async with rt.sessions() as session:
            contacts = (await session.execute(select(Journey.contact_id))).scalars().all()
        for contact_id in contacts:
            await rt.ingest("bench.ping", contact_id=contact_id)
            await asyncio.sleep(0.01)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (
                await _count(rt, "SELECT count(*) FROM journeys WHERE status = 'completed'")
                == count
            ):
                break
            await asyncio.sleep(0.1)
        async with rt.sessions() as session:
            rows = (
                await session.execute(
                    text(
                        """
                        SELECT extract(epoch FROM s.finished_at - e.received_at) AS lag
                        FROM steps s JOIN journeys j ON j.id = s.journey_id
                        JOIN events e ON e.id = j.wake_event_id OR
                             (e.contact_id = j.contact_id AND e.type = 'bench.ping')
                        WHERE s.node_id = 'park' AND s.status = 'done'
                        """
                    )
                )
            ).all()
    finally:
        proc.terminate()
        proc.join()
        await redis.aclose()
    lags = sorted(float(r.lag) for r in rows)
    if not lags:
        return float("nan"), float("nan"), 0
    p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
    return statistics.median(lags), p99, len(lags)


async def run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with fresh_database("postgresql", Path(tmp)) as url:
            rt = _runtime(url)
            await _seed_contacts(url, N)
            walk_flow = await _publish(rt, WALK_GRAPH, "bench walk")
            print(
                f"contacts: {N:,}; flow: {FLOW_NODES} nodes; batch: {BATCH};"
                f" cores: {os.cpu_count()}"
            )
            # The ceiling enrolls and walks as the engine does, so each side is timed
            # both ways: with its enrollment (one INSERT ... SELECT each) and walking alone.
            ceilings, walk_ceilings, ceiling_cpu = {}, {}, {}
            for conns in WORKER_COUNTS:
                walk_ceilings[conns], ceilings[conns], ceiling_cpu[conns] = await _ceiling(
                    url, conns
                )
                print(
                    f"ceiling (plain batched SQL, {conns} connection(s)): "
                    f"{ceilings[conns]:,.0f} rows/s enrolling + walking, "
                    f"{walk_ceilings[conns]:,.0f} rows/s walking; CPU per 1,000 rows walking: "
                    f"database backends {ceiling_cpu[conns]:.3f} s"
                )
            for workers in WORKER_COUNTS:
                r = await _engine_run(url, rt, walk_flow, workers)
                ratio = r["steps_per_s"] / ceilings[workers]
                walk_ratio = r["walk_steps_per_s"] / walk_ceilings[workers]
                print(
                    f"engine, {workers} worker process(es): {r['steps_per_s']:,.0f} steps/s "
                    f"enrolling + walking (enroll {r['enroll_s']:.2f} s, walk {r['walk_s']:.2f} s; "
                    f"walk only {r['walk_steps_per_s']:,.0f} steps/s); "
                    f"{ratio:.0%} of the {workers}-connection ceiling enrolling + walking, "
                    f"{walk_ratio:.0%} walking; "
                    f"CPU per 1,000 steps: workers {r['cpu_per_1000']:.3f} s, "
                    f"their database backends {r['db_cpu_per_1000']:.3f} s; "
                    f"{r['updates_per_journey']:.2f} journey updates per journey walked "
                    f"({r['hot_share']:.0%} heap-only); by CPU (the ceiling's backends per row "
                    f"against workers and backends per step) "
                    f"{ceiling_cpu[workers] / (r['cpu_per_1000'] + r['db_cpu_per_1000']):.0%}"
                )
            await _set_status(rt, walk_flow, "archived")
            park_flow = await _publish(rt, PARK_GRAPH, "bench park")
            for count in sorted({max(N // 10, 1), N}):
                rss = await _rss_for_waiting(url, rt, park_flow, count)
                print(f"peak RSS of a worker parking {count:,} journeys: {rss:.0f} MB")
            p50, p99, samples = await _latency(url, rt, park_flow)
            print(
                f"event-to-wake latency with an arq worker: p50 {p50 * 1000:.0f} ms, "
                f"p99 {p99 * 1000:.0f} ms ({samples} events)"
            )
            print(
                f"(on {os.cpu_count()} cores the workers share the CPU with PostgreSQL: "
                "past that many processes the curve flattens)"
            )
            engine = rt.sessions.kw["bind"]
            await engine.dispose()


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
