"""The flow editor on flows of 20, 200 and 1,000 steps: server time per fragment, browser time.

The real app runs under uvicorn on loopback (one process, SQLite, as a
laptop runs it) with the test node types. For each flow size a signed-in
marketer's HTTP client times, over several rounds (median): opening the
editor page, rendering the canvas fragment, and applying one edit (moving a
step; configuring a step), each answered with its fragments. Then headless
Chromium (Debian's /usr/bin/chromium, when installed) times opening the
editor until its script marks it ready, and one keyboard move of a step until
the redrawn canvas is in place. Prints a table; asserts nothing.

TOUCHFLOW_BENCH_ROUNDS (default 5) sets the rounds; TOUCHFLOW_BENCH_EDITOR_SIZES
(default "20,200,1000") the flow sizes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from backend.app import create_app
from backend.auth.users import create_user
from backend.db import create_engine, create_sessionmaker
from backend.models import Role
from runtime.flows import create_flow
from tests.backend.editor.nodes import EDITOR_TEST_TYPES
from tests.backend.web.support import settings_for
from tests.runtime.nodes import TEST_NODE_TYPES
from tests.support.net import free_port as _free_port
from tests.support.stores import fresh_database

ROUNDS = int(os.environ.get("TOUCHFLOW_BENCH_ROUNDS", "5"))
SIZES = tuple(
    int(n) for n in os.environ.get("TOUCHFLOW_BENCH_EDITOR_SIZES", "20,200,1000").split(",")
)
CHROMIUM = Path("/usr/bin/chromium")
EMAIL, PASSWORD = "marketer@bench.test", "correct horse battery"
COLUMNS = 25
_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]*)"')
_REVISION = re.compile(r'data-revision="(\d+)"')
# Step types the chain cycles through (all valid with these configs).
CYCLE = (
    ("test.email", {"subject": "Hello"}),
    ("test.wait", {"hours": 24}),
    ("test.tag", {"tag": "seen"}),
)


def _graph(size: int) -> dict[str, Any]:
    """A trigger and ``size - 1`` steps in a chain, laid out in rows of COLUMNS."""
    nodes: list[dict[str, Any]] = [
        {
            "id": "n0",
            "type": "test.trigger",
            "config": {"event_type": "signed.up"},
            "position": {"x": 0, "y": 0},
        }
    ]
    for i in range(1, size):
        kind, config = CYCLE[i % len(CYCLE)]
        position = {"x": (i % COLUMNS) * 260, "y": (i // COLUMNS) * 140}
        nodes.append({"id": f"n{i}", "type": kind, "config": config, "position": position})
    edges = [{"source": f"n{i}", "port": "next", "target": f"n{i + 1}"} for i in range(size - 1)]
    return {"nodes": nodes, "edges": edges}


async def _populate(url: str) -> dict[int, int]:
    """The marketer and one flow per size; returns size -> flow id."""
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as db, db.begin():
            await create_user(db, EMAIL, PASSWORD, Role.marketer, name="Bench")
            flows = {}
            for size in SIZES:
                flows[size] = (await create_flow(db, f"{size} steps", graph=_graph(size))).id
            return flows
    finally:
        await engine.dispose()


def _find(pattern: re.Pattern[str], html: str) -> str:
    match = pattern.search(html)
    if match is None:
        raise RuntimeError(f"the editor's answer has no {pattern.pattern!r}")
    return match.group(1)


def _serve(url: str) -> tuple[uvicorn.Server, threading.Thread, str]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_app(settings_for(url, base_url=base))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="bench-editor-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the app did not start")
        time.sleep(0.05)
    # The runtime (and its registry) exists once the app has started.
    for node_type in [*TEST_NODE_TYPES, *EDITOR_TEST_TYPES]:
        app.state.runtime.registry.add(node_type)
    return server, thread, base


async def _median_ms(action: Callable[[], Awaitable[Any]]) -> float:
    await action()  # warm-up: template and query caches
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        await action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def _server_times(base: str, flow_id: int) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        login = await client.get("/login")
        token = _find(_CSRF, login.text)
        await client.post(
            "/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token}
        )
        edit = f"/flows/{flow_id}/edit"
        page = await client.get(edit)
        headers = {"HX-Request": "true", "X-CSRF-Token": _find(_CSRF, page.text)}
        state = {"revision": int(_find(_REVISION, page.text)), "x": 0}
        sizes: dict[str, int] = {}

        async def get(path: str, name: str) -> None:
            response = await client.get(edit + path, headers=headers)
            response.raise_for_status()
            sizes[name] = len(response.content)

        async def post(path: str, data: dict[str, Any], name: str) -> None:
            body = {**data, "revision": str(state["revision"])}
            response = await client.post(edit + path, data=body, headers=headers)
            response.raise_for_status()
            state["revision"] = int(_find(_REVISION, response.text))  # the status's
            sizes[name] = len(response.content)

        async def move() -> None:
            state["x"] += 20
            await post("/nodes/n1/move", {"x": state["x"], "y": 0}, "move")

        async def configure() -> None:
            await post("/nodes/n1/config", {"cfg.subject": f"Hello {state['x']}"}, "config")

        times = {
            "open": await _median_ms(lambda: get("", "open")),
            "canvas": await _median_ms(lambda: get("/canvas", "canvas")),
            "move": await _median_ms(move),
            "config": await _median_ms(configure),
        }
        times.update({f"{k} KB": v / 1024 for k, v in sizes.items()})
        return times


async def _browser_times(base: str, flows: dict[int, int]) -> dict[int, dict[str, float]]:
    from playwright.async_api import async_playwright

    results: dict[int, dict[str, float]] = {}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        context = await browser.new_context(base_url=base, viewport={"width": 1440, "height": 900})
        context.set_default_timeout(120_000)
        page = await context.new_page()
        await page.goto("/login")
        await page.fill("#email", EMAIL)
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url("**/flows")
        for size, flow_id in flows.items():
            ready, moved = [], []
            for _ in range(ROUNDS):
                started = time.perf_counter()
                await page.goto(f"/flows/{flow_id}/edit")
                await page.wait_for_selector("#editor.editor-ready", state="attached")
                ready.append((time.perf_counter() - started) * 1000)
                revision = await page.get_attribute("#editor-status", "data-revision")
                # Select from the keyboard: the step may sit under the palette.
                await page.focus("#node-n1")
                await page.keyboard.press("Enter")
                await page.wait_for_selector("#panel[data-node-id='n1']", state="attached")
                started = time.perf_counter()
                await page.keyboard.press("ArrowRight")
                await page.wait_for_selector(
                    f"#editor-status:not([data-revision='{revision}'])", state="attached"
                )
                moved.append((time.perf_counter() - started) * 1000)
            results[size] = {"ready": statistics.median(ready), "move": statistics.median(moved)}
        await browser.close()
    return results


async def _run(url: str) -> None:
    flows = await _populate(url)
    server, thread, base = _serve(url)
    try:
        server_times = {size: await _server_times(base, flows[size]) for size in SIZES}
        browser: dict[int, dict[str, float]] = {}
        if CHROMIUM.exists():
            browser = await _browser_times(base, flows)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    print(f"median of {ROUNDS} rounds, SQLite, one uvicorn process on loopback; times in ms")
    head = (
        "steps",
        "open page",
        "canvas",
        "move edit",
        "config edit",
        "page KB",
        "move KB",
        "browser ready",
        "browser move",
    )
    print("  ".join(f"{h:>13}" for h in head))
    for size in SIZES:
        t, b = server_times[size], browser.get(size, {})
        cells = [
            str(size),
            f"{t['open']:.1f}",
            f"{t['canvas']:.1f}",
            f"{t['move']:.1f}",
            f"{t['config']:.1f}",
            f"{t['open KB']:.0f}",
            f"{t['move KB']:.0f}",
            f"{b['ready']:.0f}" if b else "n/a",
            f"{b['move']:.0f}" if b else "n/a",
        ]
        print("  ".join(f"{c:>13}" for c in cells))
    if not browser:
        print(f"(browser columns need Chromium at {CHROMIUM})")


async def _main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with fresh_database("sqlite", Path(tmp)) as url:
            await _run(url)


def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    asyncio.run(_main())


if __name__ == "__main__":
    main()
