"""Results on a flow with 1,000,000 step rows: seeding, folding the rollup, rendering.

Seeds one published flow with 200,000 journeys of five steps each (set-based
INSERT ... SELECT), 100,000 sent emails and 30,000 opens, spread over 30 days;
10 % of the journeys still wait. Then folds everything into the results rollup
(``runtime.results``, as the worker's periodic job does) and times, over the app
served by uvicorn on loopback with a signed-in viewer (median of ROUNDS):

- the canvas overlay's JSON (``/flows/<id>/edit/results``) and the flow page;
- the ceiling it is measured against, in the same run: the bare health endpoint
  (what any request costs) and one query that counts the same per-node numbers
  straight from the steps (what every page view would cost without the rollup).

PostgreSQL and SQLite (TOUCHFLOW_BENCH_RESULTS_DBS, default "postgresql,sqlite");
TOUCHFLOW_BENCH_RESULTS_JOURNEYS (default 200000) scales it down for a quick look.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx
from sqlalchemy import text

from backend.auth.users import create_user
from backend.db import create_engine, create_sessionmaker
from backend.flows.results import ResultsFilter, flow_results
from backend.models import Role
from runtime import flows, results
from runtime.engine import Runtime
from tests.backend.web.support import settings_for
from tests.bench.bench_editor import _CSRF, _find, _median_ms, _serve
from tests.runtime.nodes import graph, test_registry
from tests.support.stores import fresh_database

ROUNDS = int(os.environ.get("TOUCHFLOW_BENCH_ROUNDS", "5"))
DATABASES = os.environ.get("TOUCHFLOW_BENCH_RESULTS_DBS", "postgresql,sqlite").split(",")
# Five steps each: 1,000,000 step rows (fewer for a quick look).
JOURNEYS = int(os.environ.get("TOUCHFLOW_BENCH_RESULTS_JOURNEYS", "200000"))
EMAIL, PASSWORD = "viewer@bench.test", "correct horse battery"
GRAPH = graph(
    [
        ("t", "test.trigger", {"event_type": "signed.up"}),
        ("s", "test.split", {"percent_a": 50}),
        ("mail", "test.email", {"subject": "Välkommen"}),
        ("w", "test.wait", {"hours": 48}),
        ("e", "test.end", {}),
    ],
    [("t", "next", "s"), ("s", "a", "mail"), ("s", "b", "w"), ("mail", "next", "e")],
)

# n = 1..JOURNEYS; journeys get ids n (a fresh database). Day offset n % 30, half go each way.
_NUMBERS = {
    "postgresql": "SELECT n FROM generate_series(1, :count) AS n",
    "sqlite": "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :count) "
    "SELECT n FROM g",
}
_AGO = {
    "postgresql": "now() - make_interval(days => n % 30)",
    "sqlite": "datetime('now', '-' || (n % 30) || ' days')",
}
_JSON = {
    "postgresql": "jsonb_build_object('message_id', n)",
    "sqlite": "json_object('message_id', n)",
}


def _seed_sql(kind: str, flow_id: int, version_id: int) -> list[str]:
    # Built from the fixed fragments above and two ids of our own: no input reaches the SQL.
    numbers, ago = _NUMBERS[kind], _AGO[kind]
    step = (
        "INSERT INTO steps (journey_id, node_id, visit, node_type, status, port, input, output, "
        "attempts, started_at, finished_at) SELECT n, {node}, 1, 'test', {status}, {port}, "
        "'{{}}', '{{}}', 1, {ago}, {ago} FROM ({numbers}) AS g"
    )
    waiting = "(n % 2 = 0 AND n % 10 = 0)"
    return [
        "INSERT INTO journeys (flow_id, flow_version_id, status, node_id, visits, data, attempts, "  # noqa: S608
        f"entered_at, updated_at) SELECT {flow_id}, {version_id}, "
        f"CASE WHEN {waiting} THEN 'waiting' ELSE 'completed' END, "
        f"CASE WHEN {waiting} THEN 'w' WHEN n % 2 = 0 THEN 'w' ELSE 'e' END, '{{}}', '{{}}', 0, "
        f"{ago}, {ago} FROM ({numbers}) AS g",
        step.format(node="'t'", status="'done'", port="'next'", ago=ago, numbers=numbers),
        step.format(
            node="'s'",
            status="'done'",
            port="CASE WHEN n % 2 = 1 THEN 'a' ELSE 'b' END",
            ago=ago,
            numbers=numbers,
        ),
        step.format(
            node="CASE WHEN n % 2 = 1 THEN 'mail' ELSE 'w' END",
            status=f"CASE WHEN {waiting} THEN 'waiting' ELSE 'done' END",
            port=f"CASE WHEN {waiting} THEN NULL ELSE 'next' END",
            ago=ago,
            numbers=numbers,
        ),
        # Visit 2 of the split's node keeps the key unique: a second pass, as loops make.
        step.format(node="'s'", status="'done'", port="'a'", ago=ago, numbers=numbers).replace(
            "n, 's', 1,", "n, 's', 2,"
        ),
        step.format(node="'e'", status="'ended'", port="NULL", ago=ago, numbers=numbers),
        "INSERT INTO outbox_messages (idempotency_key, channel, category, journey_id, node_id, "  # noqa: S608
        "payload, status, attempts, next_attempt_at, created_at) SELECT 'bench:' || n, 'email', "
        f"'marketing', n, 'mail', '{{}}', 'sent', 1, {ago}, {ago} FROM ({numbers}) AS g "
        "WHERE n % 2 = 1",
        "INSERT INTO events (type, properties, source, occurred_at, received_at) "  # noqa: S608
        f"SELECT 'email.opened', {_JSON[kind]}, 'email', {ago}, {ago} FROM ({numbers}) AS g "
        "WHERE n % 2 = 1 AND n % 7 < 2",
    ]


# The per-node counts of the overlay, straight from the step history: the scan the rollup saves.
_SCAN = (
    "SELECT s.node_id, s.port, count(*) FROM steps s JOIN journeys j ON j.id = s.journey_id "
    "WHERE j.flow_id = :flow GROUP BY s.node_id, s.port"
)


async def _seed(kind: str, url: str) -> tuple[int, dict[str, float]]:
    engine = create_engine(url)
    figures: dict[str, float] = {}
    try:
        sessions = create_sessionmaker(engine)
        runtime = Runtime(sessions=sessions, registry=test_registry(), settings=settings_for(url))
        async with sessions() as db, db.begin():
            await create_user(db, EMAIL, PASSWORD, Role.viewer, name="Bench")
            flow = await flows.create_flow(db, "En miljon steg", graph=GRAPH)
            version = await flows.publish(db, flow.id, runtime.registry)
            flow_id, version_id = flow.id, version.id
        started = time.perf_counter()
        async with sessions() as db, db.begin():
            for statement in _seed_sql(kind, flow_id, version_id):
                await db.execute(text(statement), {"count": JOURNEYS})
        if kind == "postgresql":
            async with engine.connect() as connection:
                await connection.execute(text("COMMIT"))
                await connection.execute(text("ANALYZE"))
        figures["seed s"] = time.perf_counter() - started
        async with sessions() as db:
            figures["steps"] = float(await db.scalar(text("SELECT count(*) FROM steps")) or 0)
        started = time.perf_counter()
        folded = 0
        while True:
            report = await results.fold_results(runtime, batch=20_000, max_batches=1_000)
            folded += report.total
            if report.total == 0:
                break
        figures["fold s"] = time.perf_counter() - started
        figures["folded"] = folded
        if kind == "postgresql":  # what autovacuum does after a fold's updates
            async with engine.connect() as connection:
                await connection.execute(text("COMMIT"))
                await connection.execute(text("VACUUM ANALYZE"))
        figures["idle fold ms"] = await _median_ms(lambda: results.fold_results(runtime))
        wanted = ResultsFilter.parse({}, today=date.today())
        async with sessions() as db:
            figures["scan ms"] = await _median_ms(
                lambda: db.execute(text(_SCAN), {"flow": flow_id})
            )
            figures["results ms"] = await _median_ms(
                lambda: flow_results(db, flow_id, version_id, wanted)
            )
        return flow_id, figures
    finally:
        await engine.dispose()


async def _page_times(base: str, flow_id: int) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=base, timeout=300) as client:
        login = await client.get("/login")
        await client.post(
            "/login",
            data={"email": EMAIL, "password": PASSWORD, "csrf_token": _find(_CSRF, login.text)},
        )

        async def get(path: str) -> None:
            response = await client.get(path)
            response.raise_for_status()

        return {
            "health ms": await _median_ms(lambda: get("/healthz")),
            "overlay ms": await _median_ms(lambda: get(f"/flows/{flow_id}/edit/results")),
            "overlay v1 ms": await _median_ms(
                lambda: get(f"/flows/{flow_id}/edit/results?version=1")
            ),
            "flow page ms": await _median_ms(lambda: get(f"/flows/{flow_id}")),
        }


async def _run(kind: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        async with fresh_database(kind, Path(tmp)) as url:
            flow_id, figures = await _seed(kind, url)
            server, thread, base = _serve(url)
            try:
                figures.update(await _page_times(base, flow_id))
            finally:
                server.should_exit = True
                thread.join(timeout=30)
            return figures


def _report(kind: str, f: dict[str, float]) -> None:
    print(f"{kind}: {f['steps']:,.0f} step rows seeded in {f['seed s']:.1f} s")
    print(
        f"  fold: {f['folded']:,.0f} rows in {f['fold s']:.1f} s "
        f"({f['folded'] / f['fold s']:,.0f} rows/s); a fold with nothing new "
        f"{f['idle fold ms']:.1f} ms"
    )
    print(
        f"  median of {ROUNDS} rounds, ms   health  overlay  overlay v1  flow page"
        "  results read  step scan"
    )
    print(
        f"  {'':30}{f['health ms']:>6.1f}  {f['overlay ms']:>7.1f}  {f['overlay v1 ms']:>10.1f}"
        f"  {f['flow page ms']:>9.1f}  {f['results ms']:>12.1f}  {f['scan ms']:>9.1f}"
    )
    print(
        f"  overlay = {f['overlay ms'] / f['health ms']:.1f}x the bare health endpoint; "
        f"flow page = {f['flow page ms'] / f['health ms']:.1f}x; counting from the steps instead "
        f"would take {f['scan ms'] / f['overlay ms']:.0f}x the whole overlay request"
    )


def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for kind in DATABASES:
        _report(kind, asyncio.run(_run(kind.strip())))
