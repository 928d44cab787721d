"""Decision endpoint throughput and latency under concurrent load, beside a bare Litestar endpoint.

Both servers run the same way (uvicorn, one process, uvloop + httptools, no
access log) on loopback, one after the other, and get the same load and the
same request bytes from ``wrk`` (Debian's package, a C load generator: one
thread, keep-alive connections, each sending its next request as soon as the
previous answer arrived), so the client is not the bottleneck; its CPU share is
printed beside each run. Without ``wrk`` a Python generator stands in (and says
so: it is then the bottleneck). The requests are real snippet ones, as a
browser sends them (``text/plain`` JSON with ``Origin`` and
``Accept-Language``): a site key, a random visitor out of many (some known,
some claimed, some with flow assignments), three slots, a LinkedIn page.

The bare endpoint is the floor for "a Litestar JSON endpoint on this server":
a Litestar app with that one ``POST /p/v1/decide`` handler and nothing else (no
middleware, guards or dependencies), which reads the body, parses it with
``json.loads`` and answers a small JSON object serialised by Litestar; no
database, no cache, no validation. Touchflow's decide runs in the full app
(session, CSRF, locale, auth and compression middleware, role guard), validates
the body, checks the site key and origin, applies its rate limits
(shared through Redis when it is running, as with several web processes: blocks
reserved in the background, see ``backend.ratebudget``) and reads the visitor from
PostgreSQL unless it was read in the last few seconds (the per-visitor cache: the
mix holds 5,000 visitors, so at 2,000 req/s a visitor comes back every ~2.5 s
and about half the requests are hits).

A third run loads decide with 1,500 returning visitors, whose state the
per-visitor cache mostly holds: the same work, mostly without the database read.
In the statuses, 0 counts wrk's "non-2xx" answers (it does not say which).

Prints requests/s, p50/p99 latency, the server process's CPU time per request
(steadier than requests/s on a busy machine), the load generator's CPU, the
ratios to the bare endpoint beside the targets (decide at least 0.50 of the bare
endpoint's requests/s at every number of connections, p99 under 25 ms at 4),
and the snippet's gzipped size. Nothing is asserted (the machine is shared, and
the load generator runs on it too).

TOUCHFLOW_BENCH_SECONDS (default 8) and TOUCHFLOW_BENCH_CONNECTIONS (default "4,32",
one run per number of connections) change the run.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import multiprocessing as mp
import os
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from backend.models import (
    Audience,
    Contact,
    ContentBlock,
    ContentRule,
    ContentVariant,
    SiteKey,
    SlotAssignment,
    Visitor,
)
from tests.support.net import free_port as _free_port
from tests.support.stores import REDIS_URL, fresh_database, redis_available

SECONDS = float(os.environ.get("TOUCHFLOW_BENCH_SECONDS", "8"))
# Moderate and heavy load: latency is queueing once the server is saturated.
CONNECTIONS = tuple(
    int(n) for n in os.environ.get("TOUCHFLOW_BENCH_CONNECTIONS", "4,32").split(",")
)
WARMUP_SECONDS = 1.5
VISITORS = 20_000
ORIGIN = "https://shop.example.com"
SITE_KEY = "tfs_bench"
ACCEPT_LANGUAGE = "en-US,en;q=0.9,de;q=0.8"  # what a browser sends with every request
SNIPPET = Path(__file__).parents[2] / "frontend" / "static" / "snippet" / "touchflow.js"


async def _populate(url: str) -> list[str]:
    """A site, a hero block with rules for 5 slots, visitors: 1 in 4 known, 1 in 10 assigned."""
    from backend.db import create_engine, create_sessionmaker

    engine = create_engine(url)
    now = datetime.now(UTC)
    async with create_sessionmaker(engine)() as db, db.begin():
        db.add(SiteKey(name="Bench", key=SITE_KEY, allowed_origins=[ORIGIN]))
        block = ContentBlock(name="Hero", description="")
        db.add(block)
        await db.flush()
        variants = [
            ContentVariant(block_id=block.id, key=f"v{n}", name=f"V{n}", html=f"<h2>V{n}</h2>")
            for n in range(4)
        ]
        db.add_all(variants)
        await db.flush()
        for slot in ("hero", "banner", "footer", "aside", "popup"):
            for n, variant in enumerate(variants):
                db.add(
                    ContentRule(
                        slot=slot,
                        variant_id=variant.id,
                        priority=n,
                        utm_source=["linkedin", "google", "", ""][n],
                        url_pattern=["", "", "/pricing*", ""][n],
                        audience=[
                            Audience.anonymous,
                            Audience.anyone,
                            Audience.anyone,
                            Audience.known,
                        ][n].value,
                    )
                )
        contacts = await db.execute(
            insert(Contact).returning(Contact.id),
            [{"email": f"c{n}@example.com"} for n in range(VISITORS // 4)],
        )
        contact_ids = list(contacts.scalars())
        ids = [f"bench-visitor-{n:08d}" for n in range(VISITORS)]
        await db.execute(
            insert(Visitor),
            [
                {
                    "id": vid,
                    "contact_id": contact_ids[n // 4] if n % 4 == 0 else None,
                    "claimed_contact_id": contact_ids[n // 4] if n % 4 == 1 else None,
                    "traits": {},
                }
                for n, vid in enumerate(ids)
            ],
        )
        await db.execute(
            insert(SlotAssignment),
            [
                {
                    "slot": "banner",
                    "visitor_id": vid,
                    "html": "<p>Your offer</p>",
                    "expires_at": now + timedelta(days=7),
                }
                for vid in ids[::10]
            ],
        )
    await engine.dispose()
    return ids


def _serve_touchflow(url: str, port: int, redis_url: str | None) -> None:
    import uvicorn

    from backend.app import create_app
    from tests.backend.web.support import settings_for

    app = create_app(settings_for(url, base_url=f"http://127.0.0.1:{port}", redis_url=redis_url))
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


def _serve_bare(port: int) -> None:
    import uvicorn
    from litestar import Litestar, Request, post

    @post("/p/v1/decide", status_code=200)
    async def decide(request: Request[Any, Any, Any]) -> dict[str, Any]:
        body = json.loads(await request.body())
        return {"slots": {}, "known": False, "echo": len(body)}

    uvicorn.run(
        Litestar([decide]),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


def _body(vid: str) -> str:
    return json.dumps(
        {
            "key": SITE_KEY,
            "vid": vid,
            "slots": ["hero", "banner", "footer"],
            "page": {"url": "https://shop.example.com/?utm_source=linkedin", "title": "Shop"},
            "utm": {},
        }
    )


def _request(port: int, vid: str) -> bytes:
    body = _body(vid).encode()
    head = (
        f"POST /p/v1/decide HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {ORIGIN}\r\n"
        f"Accept-Language: {ACCEPT_LANGUAGE}\r\n"
        f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def _connection(
    port: int, requests: list[bytes], until: float, measure_from: float, out: list[float]
) -> dict[int, int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    statuses: dict[int, int] = {}
    try:
        while (started := time.perf_counter()) < until:
            writer.write(random.choice(requests))
            status = await _read_response(reader)
            done = time.perf_counter()
            if started >= measure_from:
                out.append(done - started)
                statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()
    return statuses


def _cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _server_cpu(pid: int, measure_from: float, until: float) -> float:
    """The server's CPU seconds over the measured window."""
    await asyncio.sleep(measure_from - time.perf_counter())
    before = _cpu_seconds(pid)
    await asyncio.sleep(until - time.perf_counter())
    return _cpu_seconds(pid) - before


async def _load(
    port: int, pid: int, visitors: list[str], connections: int
) -> tuple[float, list[float], dict[int, int], float]:
    requests = [_request(port, vid) for vid in random.sample(visitors, min(5000, len(visitors)))]
    start = time.perf_counter()
    measure_from = start + WARMUP_SECONDS
    until = measure_from + SECONDS
    latencies: list[float] = []
    cpu = asyncio.create_task(_server_cpu(pid, measure_from, until))
    results = await asyncio.gather(
        *(_connection(port, requests, until, measure_from, latencies) for _ in range(connections))
    )
    statuses: dict[int, int] = {}
    for result in results:
        for status, count in result.items():
            statuses[status] = statuses.get(status, 0) + count
    # CPU per request holds up better than requests/s when others share the machine.
    cpu_per_request = await cpu / max(len(latencies), 1)
    return len(latencies) / SECONDS, latencies, statuses, cpu_per_request


# requests/s, p50 and p99 (seconds), statuses, server CPU per request, client CPU share
Run = tuple[float, float, float, dict[int, int], float, float | None]


def _wrk_script(visitors: list[str], folder: Path) -> Path:
    """A wrk Lua script sending the snippet's request for a random visitor each time."""
    bodies = ",\n".join(json.dumps(_body(vid)) for vid in visitors)
    script = folder / "decide.lua"
    script.write_text(
        f"""wrk.method = "POST"
wrk.path = "/p/v1/decide"
wrk.headers["Origin"] = "{ORIGIN}"
wrk.headers["Accept-Language"] = "{ACCEPT_LANGUAGE}"
wrk.headers["Content-Type"] = "text/plain"
local bodies = {{
{bodies}
}}
request = function()
  return wrk.format(nil, nil, nil, bodies[math.random(#bodies)])
end
"""
    )
    return script


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(text: str) -> float:
    number = re.match(r"[\d.]+", text)
    assert number is not None
    return float(number.group()) * _UNITS[text[number.end() :]]


def _wrk_once(wrk: str, port: int, script: Path, connections: int, seconds: float) -> str:
    return subprocess.run(
        [
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "5s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _wrk_load(wrk: str, port: int, pid: int, script: Path, connections: int) -> Run:
    """Warm up, then one measured wrk run: rate, p50/p99, statuses, server and client CPU."""
    _wrk_once(wrk, port, script, connections, WARMUP_SECONDS)
    client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = _cpu_seconds(pid)
    out = _wrk_once(wrk, port, script, connections, SECONDS)
    server = _cpu_seconds(pid) - server_before
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client = (client_after.ru_utime - client_before.ru_utime) + (
        client_after.ru_stime - client_before.ru_stime
    )
    rate_match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total_match = re.search(r"(\d+) requests in", out)
    assert rate_match is not None and total_match is not None, out
    rate, total = float(rate_match.group(1)), int(total_match.group(1))
    cuts = {
        int(m.group(1)): _seconds(m.group(2))
        for m in re.finditer(r"^\s+(50|99)%\s+(\S+)", out, re.M)
    }
    failed_match = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failed = int(failed_match.group(1)) if failed_match else 0
    errors = re.search(r"Socket errors: (.*)", out)
    statuses = {200: total - failed, **({0: failed} if failed else {})}
    if errors:
        print(f"      wrk socket errors: {errors.group(1)}")
    return rate, cuts[50], cuts[99], statuses, server / max(total, 1), client / SECONDS


def _wait_for(port: int, process: BaseProcess) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not process.is_alive():
            raise RuntimeError("the benchmark server died on start-up")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the benchmark server did not start")


def _measure(target: Any, args: tuple[Any, ...], port: int, visitors: list[str]) -> list[Run]:
    """One server process, loaded at each number of connections in turn."""
    process = mp.get_context("spawn").Process(target=target, args=args, daemon=True)
    process.start()
    wrk = shutil.which("wrk")
    try:
        _wait_for(port, process)
        pid = process.pid
        assert pid is not None
        if wrk is None:
            return [_python_load(port, pid, visitors, n) for n in CONNECTIONS]
        with tempfile.TemporaryDirectory() as folder:
            script = _wrk_script(random.sample(visitors, min(5000, len(visitors))), Path(folder))
            return [_wrk_load(wrk, port, pid, script, n) for n in CONNECTIONS]
    finally:
        process.terminate()
        process.join(10)


def _python_load(port: int, pid: int, visitors: list[str], connections: int) -> Run:
    rate, latencies, statuses, cpu = asyncio.run(_load(port, pid, visitors, connections))
    cuts = statistics.quantiles(latencies, n=100)
    return rate, cuts[49], cuts[98], statuses, cpu, None


def _report(
    name: str,
    rate: float,
    p50: float,
    p99: float,
    statuses: dict[int, int],
    cpu: float,
    client: float | None,
) -> None:
    load = "python client" if client is None else f"wrk CPU {client * 100:3.0f}%"
    print(
        f"    {name:<26} {rate:8.0f} req/s   p50 {p50 * 1000:6.2f} ms"
        f"   p99 {p99 * 1000:6.2f} ms   server CPU {cpu * 1e6:5.0f} us/req"
        f"   {load}   statuses {dict(sorted(statuses.items()))}"
    )


async def _with_database(run: Any) -> None:
    with tempfile.TemporaryDirectory() as folder:
        async with fresh_database("postgresql", Path(folder)) as url:
            visitors = await _populate(url)
            await asyncio.to_thread(run, url, visitors)


def main() -> None:
    size = len(gzip.compress(SNIPPET.read_bytes(), 9))
    print(f"  snippet {SNIPPET.name}: {SNIPPET.stat().st_size} bytes, {size} bytes gzipped")
    generator = (
        "wrk, one thread" if shutil.which("wrk") else "Python (install wrk for real figures)"
    )
    print(
        f"  load: {generator}; keep-alive connections as listed, {SECONDS:.0f} s each after warm-up"
    )

    # With Redis (as several web processes run), the rate limits are shared through it.
    redis_url = REDIS_URL if asyncio.run(redis_available(REDIS_URL)) else None
    print(f"  rate limits: {'shared through Redis' if redis_url else 'in the process (no Redis)'}")

    def run(url: str, visitors: list[str]) -> None:
        port = _free_port()
        bare = _measure(_serve_bare, (port,), port, visitors)
        port = _free_port()
        decide = _measure(_serve_touchflow, (url, port, redis_url), port, visitors)
        # Mostly without the database read: 1,500 returning visitors, each read once
        # per cache period (few enough to come back within it, enough to stay under
        # the per-visitor rate limit). The rest of the gap to the mix is that read.
        port = _free_port()
        cached = _measure(_serve_touchflow, (url, port, redis_url), port, visitors[:1500])
        for connections, plain, ours, warm in zip(CONNECTIONS, bare, decide, cached, strict=True):
            print(f"  {connections} connections:")
            _report("bare Litestar endpoint", *plain)
            _report("POST /p/v1/decide", *ours)
            _report("decide, returning visitors", *warm)
            ratio = ours[0] / plain[0]
            p99 = ours[2] * 1000
            print(
                f"    decide / bare throughput: {ratio:.2f} (target >= 0.50:"
                f" {'met' if ratio >= 0.5 else 'NOT met'})"
                f"   CPU per request: {ours[4] / plain[4]:.1f}x"
                f"   (cached visitors: {warm[0] / plain[0]:.2f})"
            )
            if connections == 4:
                print(
                    f"    decide p99 at 4 connections: {p99:.1f} ms (target < 25 ms:"
                    f" {'met' if p99 < 25 else 'NOT met'})"
                )

    asyncio.run(_with_database(run))


if __name__ == "__main__":
    main()
