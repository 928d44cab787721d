"""Results in Chromium: the canvas overlay's numbers after real journeys; the flow page's charts."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from backend.db import create_engine, create_sessionmaker
from backend.models import Role
from runtime import flows
from runtime.engine import Runtime
from tests.backend.web.support import settings_for
from tests.browser.conftest import LiveServer, sign_in
from tests.browser.test_accessibility import _axe, _report
from tests.runtime.conftest import add_contacts
from tests.runtime.nodes import graph, test_registry

pytestmark = pytest.mark.browser

GRAPH = graph(
    [
        ("t", "test.trigger", {"event_type": "signed.up"}),
        ("c", "test.condition", {"attribute": "vip"}),
        ("w", "test.wait", {"hours": 48}),
        ("e", "test.end", {}),
    ],
    [("t", "next", "c"), ("c", "yes", "w"), ("c", "no", "e")],
)
PLACES = ((0, 100), (300, 100), (600, 0), (600, 260))  # left to right, the branches apart
for _node, (_x, _y) in zip(GRAPH["nodes"], PLACES, strict=True):
    _node["position"] = {"x": _x, "y": _y}


async def _walk_customers(live_server: LiveServer) -> int:
    """Five customers through the published flow by the real runtime, then the worker's fold."""
    engine = create_engine(live_server.database_url)
    runtime = Runtime(
        sessions=create_sessionmaker(engine),
        registry=test_registry(),
        settings=settings_for(live_server.database_url),
    )
    try:
        async with runtime.sessions() as db, db.begin():
            flow = await flows.create_flow(db, "Välkommen", graph=GRAPH)
            await flows.publish(db, flow.id, runtime.registry)
        for contact in await add_contacts(runtime, 3, owner=False, vip=True):
            await runtime.ingest("signed.up", contact_id=contact)
        for contact in await add_contacts(runtime, 2, owner=False):
            await runtime.ingest("signed.up", contact_id=contact)
        await runtime.drain()
        await runtime.fold_results()
        return flow.id
    finally:
        await engine.dispose()


async def test_results_toggle_overlays_the_counts_on_the_canvas(
    page: Page, live_server: LiveServer
) -> None:
    flow_id = await _walk_customers(live_server)
    await sign_in(page, Role.viewer, to=f"/flows/{flow_id}/edit")
    await expect(page.locator("#editor.editor-ready")).to_be_attached()
    toggle = page.get_by_role("button", name="Results")
    await expect(toggle).to_have_attribute("aria-pressed", "false")
    await expect(page.locator("#results-filter")).to_be_hidden()  # until asked for
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-pressed", "true")
    await expect(page.locator("#results-summary")).to_contain_text("every version")

    def value(node: str, metric: str):  # type: ignore[no-untyped-def]
        return page.locator(f'.result-card[data-node-id="{node}"] [data-metric="{metric}"] dd')

    await expect(value("t", "reached")).to_have_text("5")
    await expect(value("c", "reached")).to_have_text("5")
    await expect(value("w", "reached")).to_have_text("3")
    await expect(value("w", "waiting")).to_have_text("3")
    await expect(value("e", "reached")).to_have_text("2")
    await expect(value("e", "failed")).to_have_text("0")
    await expect(page.locator('.result-edge[data-source="c"][data-port="yes"]')).to_contain_text(
        "3"
    )
    await expect(page.locator('.result-edge[data-source="c"][data-port="no"]')).to_contain_text("2")

    violations = await _axe(page)
    assert not violations, _report("the editor with results shown", violations)

    # A version that has no customers in a range long ago: zeros, waiting still counted now.
    await page.fill("#results-from", "2020-01-01")
    await page.fill("#results-to", "2020-01-31")
    await page.select_option("#results-version", "1")
    await page.get_by_role("button", name="Show", exact=True).click()
    await expect(page.locator("#results-summary")).to_contain_text("version 1")
    await expect(value("t", "reached")).to_have_text("0")
    await expect(value("w", "waiting")).to_have_text("3")

    # A range the server refuses says why, in the summary line.
    await page.fill("#results-from", "2020-02-01")
    await page.get_by_role("button", name="Show", exact=True).click()
    await expect(page.locator("#results-summary")).to_have_text(
        "The first day comes after the last day."
    )

    await toggle.click()
    await expect(page.locator("#results-layer")).to_be_hidden()


async def test_flow_page_draws_its_tables_as_charts(page: Page, live_server: LiveServer) -> None:
    flow_id = await _walk_customers(live_server)
    await sign_in(page, Role.viewer, to=f"/flows/{flow_id}")
    charts = page.locator("figure.chart canvas")
    await expect(charts).to_have_count(3)  # steps, ways out of the condition, entered per day
    await expect(page.locator("table.chart-data[data-charted=true]")).to_have_count(3)
    steps = page.locator("figure.chart").first
    table = steps.locator("table.chart-data")
    await expect(table).to_be_hidden()
    await steps.get_by_text("Show as table").click()
    await expect(table).to_be_visible()
    await expect(table.locator("tbody tr").first.locator("td").first).to_have_text("5")
    violations = await _axe(page)
    assert not violations, _report("the flow page with charts", violations)
