"""Ingestion throughput on PostgreSQL and SQLite (figures printed, never asserted).

Prints, each beside a ceiling measured in the same run:

- ``POST /api/v1/batch/track`` events/s (1,000 events per request, a third of
  them for contacts not seen before) against a raw ``INSERT ... SELECT
  unnest(...)`` of the same number of event rows over asyncpg (PostgreSQL),
  and the same batches on SQLite;
- ``POST /api/v1/track`` (one event per request) against a bare Litestar
  endpoint that only parses the JSON body, both driven by ``wrk`` (Debian's,
  a compiled load generator: ``apt-get install wrk``) at 8 and 32
  connections, with the client's and the server's CPU, so the ceiling is the
  server's and not the client's; beside them ``GET /api/v1/me`` on the same
  app (key check, middleware and routing, no database), the part of the
  gap that is the web stack and not ingestion;
- CSV import rows/s (``run_import``, upserting new contacts with attributes);
- the same import started from the browser pages (upload, map, start) on the
  running app, with the latency of ``GET /healthz`` while it runs: the import
  shares the web process and must not block it.

Servers are uvicorn child processes, one each; the figures are for this
machine only. A deployment runs several web processes, but every ratio here
is one process against one process (the ceilings too), so none of them says
how far more processes go. On a shared machine wall-clock rates swing with
the neighbours' load; the server's CPU per event and per request (from
/proc) is the steadier figure to compare runs by.
Sizes: TOUCHFLOW_BENCH_BATCHES (1,000-event requests, default 20),
TOUCHFLOW_BENCH_WRK_SECONDS (per wrk run, default 8), TOUCHFLOW_BENCH_IMPORT
(rows, default 20,000).
"""

from __future__ import annotations

import asyncio
import csv
import json
import multiprocessing as mp
import os
import re
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from backend.auth.keys import new_api_key
from backend.auth.users import create_user
from backend.contacts.imports import count_rows, run_import
from backend.db import create_engine, create_sessionmaker
from backend.models import ApiKey, ImportJob, Role
from tests.support.net import free_port as _free_port
from tests.support.stores import fresh_database

BATCHES = int(os.environ.get("TOUCHFLOW_BENCH_BATCHES", "20"))
WRK_SECONDS = int(os.environ.get("TOUCHFLOW_BENCH_WRK_SECONDS", "8"))
IMPORT_ROWS = int(os.environ.get("TOUCHFLOW_BENCH_IMPORT", "20000"))
CONCURRENCY = 2  # batch requests in flight
BATCH = 1000
WRK_CONNECTIONS = (8, 32)


def _serve_touchflow(url: str, port: int, uploads: str) -> None:
    import uvicorn

    from backend.app import create_app
    from backend.settings import Settings

    settings = Settings(
        database_url=url, secret_key="bench-" + "x" * 40, environment="test", redis_url=None
    )
    app = create_app(settings)
    app.state.import_dir = uploads
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _serve_bare(port: int) -> None:
    import uvicorn
    from litestar import Litestar, get, post

    @post("/track", status_code=202)
    async def track(data: dict[str, Any]) -> dict[str, bool]:
        return {"ok": True}

    @get("/healthz")
    async def healthz() -> str:
        return "ok"

    uvicorn.run(Litestar([track, healthz]), host="127.0.0.1", port=port, log_level="warning")


async def _wait_up(base: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(1200):  # two minutes: a loaded machine imports the app slowly
            try:
                if (await client.get(f"{base}/healthz")).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"server at {base} did not start")


async def _post_all(base: str, path: str, bodies: list[Any], headers: dict[str, str]) -> float:
    """Seconds to post every body, CONCURRENCY at a time; every answer must be a success."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    limits = httpx.Limits(max_connections=CONCURRENCY)

    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=600) as c:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                response = await c.post(path, json=body)
                if response.status_code >= 300:
                    raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started


def _event(n: int, run: str) -> dict[str, Any]:
    return {
        "type": "page.viewed",
        "email": f"bench{n % 500}@example.com",
        "properties": {"path": f"/products/{n % 50}", "n": n},
        "idempotency_key": f"{run}-{n}",
    }


async def _api_key(url: str) -> str:
    engine = create_engine(url)
    made = new_api_key()
    async with create_sessionmaker(engine)() as db, db.begin():
        db.add(
            ApiKey(name="bench", prefix=made.prefix, key_hash=made.key_hash, role=Role.admin.value)
        )
    await engine.dispose()
    return made.token


def _start(target: Any, *args: Any) -> Any:
    process = mp.get_context("spawn").Process(target=target, args=args, daemon=True)
    process.start()
    return process


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(
    url: str, connections: int, body: dict[str, Any] | None, token: str | None
) -> dict[str, float]:
    """Drive ``url`` with wrk (a GET without ``body``); requests/s, p99 latency, client CPU."""
    headers = ""
    if token:
        headers += f'wrk.headers["Authorization"] = "Bearer {token}"\n'
    script = headers
    if body is not None:
        headers += 'wrk.headers["Content-Type"] = "application/json"\n'
        script = f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(body))}\n{headers}'
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{WRK_SECONDS}s",
            "--latency",
            "-s",
            handle.name,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    os.unlink(handle.name)
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors from {url}:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99 is not None
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / elapsed
    return {"rate": rate, "p99_ms": float(p99.group(1)) * scale, "client_cpu": cpu}


def _batches(run: str, count: int) -> list[dict[str, Any]]:
    """``count`` requests of BATCH events; a third name a contact not seen before."""
    return [
        {
            "items": [
                {
                    "type": "page.viewed",
                    "email": f"{run}-{n}@example.com"
                    if n % 3 == 0
                    else f"bench{n % 500}@example.com",
                    "properties": {"path": f"/products/{n % 50}", "n": n},
                    "idempotency_key": f"{run}-{n}",
                }
                for n in range(b * BATCH, (b + 1) * BATCH)
            ]
        }
        for b in range(count)
    ]


async def _raw_unnest(url: str, rows: int) -> float:
    """Seconds to insert ``rows`` event rows with plain ``INSERT ... SELECT unnest(...)``."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        contacts = [r[0] for r in await conn.fetch("SELECT id FROM contacts LIMIT 500")]
        stmt = (
            "INSERT INTO events (type, contact_id, properties, source, dedupe_key, occurred_at,"
            " received_at) SELECT * FROM unnest($1::text[], $2::bigint[], $3::jsonb[],"
            " $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[])"
        )
        now = datetime.now(UTC)
        started = time.perf_counter()
        for start in range(0, rows, BATCH):
            size = min(BATCH, rows - start)
            await conn.execute(
                stmt,
                ["page.viewed"] * size,
                [contacts[n % len(contacts)] for n in range(size)],
                [json.dumps({"path": f"/products/{n % 50}", "n": n}) for n in range(size)],
                ["api:bench"] * size,
                [f"raw-{start + n}" for n in range(size)],
                [now] * size,
                [now] * size,
            )
        return time.perf_counter() - started
    finally:
        await conn.close()


async def _commit_latency(url: str, synchronous: str, count: int = 200) -> float:
    """Median milliseconds of a one-row autocommit INSERT with ``synchronous_commit``."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f"SET synchronous_commit = {synchronous}")
        await conn.execute("CREATE TABLE bench_commit (n integer)")
        took = []
        for n in range(count):
            started = time.perf_counter()
            await conn.execute("INSERT INTO bench_commit VALUES ($1)", n)
            took.append(time.perf_counter() - started)
        await conn.execute("DROP TABLE bench_commit")
    finally:
        await conn.close()
    return statistics.median(took) * 1000


async def _batch_track(base: str, auth: dict[str, str], run: str) -> float:
    await _post_all(base, "/api/v1/batch/track", _batches(f"{run}-warm", 2), auth)
    bodies = _batches(run, BATCHES)
    return await _post_all(base, "/api/v1/batch/track", bodies, auth)


async def _http(url: str, sqlite_url: str, import_csv: Path) -> None:
    token = await _api_key(url)
    sqlite_token = await _api_key(sqlite_url)
    app_port, bare_port, lite_port = _free_port(), _free_port(), _free_port()
    servers = [
        _start(_serve_touchflow, url, app_port, str(import_csv.parent)),
        _start(_serve_bare, bare_port),
        _start(_serve_touchflow, sqlite_url, lite_port, str(import_csv.parent)),
    ]
    try:
        app, bare = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{bare_port}"
        lite = f"http://127.0.0.1:{lite_port}"
        await asyncio.gather(_wait_up(app), _wait_up(bare), _wait_up(lite))
        auth = {"Authorization": f"Bearer {token}"}
        events = BATCHES * BATCH
        # A deployment runs several web processes (one per core); the ratios here
        # compare one process with one process, so they say nothing about scaling.
        print(f"cores: {os.cpu_count()}; servers: one uvicorn process each, app and ceilings")

        cpu = _cpu_seconds(servers[0].pid)
        batch_s = await _batch_track(app, auth, "pg")
        # The warm-up's two batches are in the CPU figure: a small overstatement.
        per_event = (_cpu_seconds(servers[0].pid) - cpu) / (events + 2 * BATCH) * 1000
        raw_s = await _raw_unnest(url, events)
        batch, raw = events / batch_s, events / raw_s
        print(
            f"batch track, PostgreSQL ({BATCHES} requests of {BATCH:,}, {CONCURRENCY} in flight):"
        )
        print(
            f"  POST /api/v1/batch/track                 {batch:10,.0f} events/s "
            f"(server CPU {per_event:.3f} ms/event)"
        )
        print(f"  raw INSERT ... SELECT unnest(...), same rows {raw:8,.0f} rows/s")
        print(f"  ratio                                    {batch / raw:10.0%}")
        lite_s = await _batch_track(lite, {"Authorization": f"Bearer {sqlite_token}"}, "lite")
        print(f"batch track, SQLite: {events / lite_s:,.0f} events/s")

        # The test databases do not wait for the disk at commit (tests/support/stores.py);
        # a deployment does, and there a call's answer waits for a WAL flush.
        quick, durable = await _commit_latency(url, "off"), await _commit_latency(url, "on")
        print(
            f"one-row autocommit INSERT, p50: {quick:.2f} ms as this database commits "
            f"(synchronous_commit=off), {durable:.2f} ms waiting for the disk (on, the default); "
            f"with that, 8 connections get at most about {8 / durable * 1000:,.0f} answers/s"
        )
        body = {"type": "page.viewed", "email": "wrk@example.com", "properties": {"path": "/"}}
        print(f"single track vs a bare Litestar POST, wrk (1 thread, {WRK_SECONDS} s per run):")
        for conns in WRK_CONNECTIONS:
            cpu = _cpu_seconds(servers[1].pid)
            ceiling = _wrk(f"{bare}/track", conns, body, None)
            bare_cpu = (_cpu_seconds(servers[1].pid) - cpu) / WRK_SECONDS
            cpu = _cpu_seconds(servers[0].pid)
            single = _wrk(f"{app}/api/v1/track", conns, body, token)
            app_cpu = (_cpu_seconds(servers[0].pid) - cpu) / WRK_SECONDS
            # The app's own stack (middleware, auth, routing) without the database.
            stack = _wrk(f"{app}/api/v1/me", conns, None, token)
            cpu_per = app_cpu * 1e6 / max(single["rate"], 1)
            print(
                f"  {conns:2d} connections: track {single['rate']:7,.0f} req/s "
                f"(p99 {single['p99_ms']:.0f} ms, server CPU {app_cpu:.0%} = "
                f"{cpu_per:.0f} us/request, "
                f"wrk CPU {single['client_cpu']:.0%}); bare {ceiling['rate']:7,.0f} req/s "
                f"(server CPU {bare_cpu:.0%}, wrk CPU {ceiling['client_cpu']:.0%}); "
                f"ratio {single['rate'] / ceiling['rate']:.0%}"
            )
            print(
                f"      the app's stack alone (GET /api/v1/me, no database): "
                f"{stack['rate']:7,.0f} req/s = {stack['rate'] / ceiling['rate']:.0%} of bare"
            )
        await _import_through_pages(app, url, import_csv)
    finally:
        for server in servers:
            server.terminate()
            server.join(10)


async def _import_through_pages(base: str, url: str, path: Path) -> None:
    engine = create_engine(url)
    async with create_sessionmaker(engine)() as db, db.begin():
        await create_user(db, "bench@example.com", "bench password 1", Role.marketer)
    meta = re.compile(r'<meta name="csrf-token" content="([^"]*)"')
    async with httpx.AsyncClient(base_url=base, timeout=120) as web:
        token = meta.findall((await web.get("/login")).text)[0]
        login = {"email": "bench@example.com", "password": "bench password 1", "csrf_token": token}
        await web.post("/login", data=login)
        token = meta.findall((await web.get("/imports/new")).text)[0]
        uploaded = await web.post(
            "/imports",
            files={"file": (path.name, path.read_bytes(), "text/csv")},
            data={"csrf_token": token},
        )
        job_page = uploaded.headers["location"]
        mapping = {"map-0": "email", "map-1": "first_name", "map-2": "attr:city"}
        mapping |= {"map-3": "attr:age", "map-4": "attr:vip", "mode": "upsert"}
        await web.post(f"{job_page}/start", data={**mapping, "csrf_token": token})
        job_id = int(job_page.rsplit("/", 1)[1])
        started = time.perf_counter()
        latencies: list[float] = []
        sessions = create_sessionmaker(engine)
        while True:
            sent = time.perf_counter()
            await web.get("/healthz")
            latencies.append(time.perf_counter() - sent)
            async with sessions() as db:
                job = await db.get(ImportJob, job_id)
                assert job is not None
                if job.status in ("done", "failed"):
                    break
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - started
    await engine.dispose()
    assert job.status == "done", job.error
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    print(
        f"CSV import from the pages: {job.total_rows:,} rows in {seconds:.1f} s = "
        f"{job.total_rows / seconds:,.0f} rows/s; GET /healthz meanwhile "
        f"p50 {cuts[49] * 1000:.0f} ms, p99 {cuts[98] * 1000:.0f} ms ({len(latencies)} requests)"
    )


def _write_csv(path: Path, rows: int, prefix: str = "import") -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "first_name", "city", "age", "vip"])
        for n in range(rows):
            writer.writerow(
                [f"{prefix}{n}@example.com", f"Person {n}", "Malmö", 20 + n % 60, "true"]
            )


async def _import(url: str) -> None:
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "contacts.csv"
        _write_csv(path, IMPORT_ROWS)
        columns = {"email": "email", "first_name": "first_name", "city": "attr:city"}
        columns |= {"age": "attr:age", "vip": "attr:vip"}
        async with sessions() as db, db.begin():
            job = ImportJob(
                filename="contacts.csv",
                path=str(path),
                mapping={"delimiter": ",", "columns": columns},
                total_rows=count_rows(path),
                status="queued",
            )
            db.add(job)
        started = time.perf_counter()
        await run_import(sessions, job.id)
        seconds = time.perf_counter() - started
        async with sessions() as db:
            done = await db.get(ImportJob, job.id)
            assert done is not None and done.status == "done", done and done.error
            created = done.created_count
    await engine.dispose()
    print(
        f"CSV import: {IMPORT_ROWS:,} rows ({created:,} created) in {seconds:.1f} s = "
        f"{IMPORT_ROWS / seconds:,.0f} rows/s"
    )


async def run() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("bench_ingest needs wrk (apt-get install -y wrk; scripts/services.sh)")
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            fresh_database("postgresql", Path(tmp)) as url,
            fresh_database("sqlite", Path(tmp)) as sqlite_url,
        ):
            page_csv = Path(tmp) / "from-the-pages.csv"
            _write_csv(page_csv, IMPORT_ROWS, prefix="page")
            await _http(url, sqlite_url, page_csv)
            await _import(url)


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
