"""Ingestion throughput on PostgreSQL (figures printed, never asserted).

Prints, measured in the same run on loopback HTTP (uvicorn in a child process,
the client here):

- ``track`` events/s through ``POST /api/v1/track`` (one event per request)
  and ``POST /api/v1/batch/track`` (500 per request), with an API key;
- requests/s of a bare Litestar endpoint that only parses the JSON body, the
  ceiling for one-event requests on this machine;
- CSV import rows/s (``run_import``, upserting new contacts with attributes);
- the same import started from the browser pages (upload, map, start) on the
  running app, with the latency of ``GET /healthz`` while it runs: the import
  shares the web process and must not block it.

Sizes: TOUCHFLOW_BENCH_TRACK (events, default 3,000), TOUCHFLOW_BENCH_IMPORT
(rows, default 20,000), TOUCHFLOW_BENCH_CONCURRENCY (requests in flight, 16).
"""

from __future__ import annotations

import asyncio
import csv
import multiprocessing as mp
import os
import re
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from backend.auth.keys import new_api_key
from backend.contacts.imports import count_rows, run_import
from backend.db import create_engine, create_sessionmaker
from backend.models import ApiKey, ImportJob, Role
from backend.services.users import create_user
from tests.services import fresh_database

TRACK = int(os.environ.get("TOUCHFLOW_BENCH_TRACK", "3000"))
IMPORT_ROWS = int(os.environ.get("TOUCHFLOW_BENCH_IMPORT", "20000"))
CONCURRENCY = int(os.environ.get("TOUCHFLOW_BENCH_CONCURRENCY", "16"))
BATCH = 500


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        for _ in range(300):
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


async def _http(url: str, import_csv: Path) -> None:
    token = await _api_key(url)
    ctx = mp.get_context("spawn")
    app_port, bare_port = _free_port(), _free_port()
    servers = [
        ctx.Process(
            target=_serve_touchflow, args=(url, app_port, str(import_csv.parent)), daemon=True
        ),
        ctx.Process(target=_serve_bare, args=(bare_port,), daemon=True),
    ]
    for server in servers:
        server.start()
    try:
        app, bare = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{bare_port}"
        await asyncio.gather(_wait_up(app), _wait_up(bare))
        auth = {"Authorization": f"Bearer {token}"}
        # Warm up both (connections, caches, the 500 contacts the events create).
        await _post_all(app, "/api/v1/track", [_event(n, "warm") for n in range(500)], auth)
        await _post_all(bare, "/track", [_event(n, "warm") for n in range(200)], {})

        bare_s = await _post_all(bare, "/track", [_event(n, "bare") for n in range(TRACK)], {})
        single_s = await _post_all(
            app, "/api/v1/track", [_event(n, "single") for n in range(TRACK)], auth
        )
        batches = [
            {"items": [_event(n, "batch") for n in range(start, min(start + BATCH, TRACK))]}
            for start in range(0, TRACK, BATCH)
        ]
        batch_s = await _post_all(app, "/api/v1/batch/track", batches, auth)
        print(f"HTTP, {CONCURRENCY} requests in flight, {TRACK:,} events each:")
        print(f"  bare Litestar endpoint (parse JSON only) {TRACK / bare_s:10,.0f} requests/s")
        print(f"  POST /api/v1/track (1 event/request)     {TRACK / single_s:10,.0f} events/s")
        print(f"  POST /api/v1/batch/track ({BATCH}/request)   {TRACK / batch_s:10,.0f} events/s")
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
    with tempfile.TemporaryDirectory() as tmp:
        async with fresh_database("postgresql", Path(tmp)) as url:
            page_csv = Path(tmp) / "from-the-pages.csv"
            _write_csv(page_csv, IMPORT_ROWS, prefix="page")
            await _http(url, page_csv)
            await _import(url)


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
