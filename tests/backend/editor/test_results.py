"""A flow's results read from the rollup: the canvas overlay's JSON and the flow page's tables."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import FlowVersion, Journey, Role
from runtime import flows
from runtime.models import FlowResult
from tests.backend.editor.conftest import Editor, register_test_types
from tests.backend.web.conftest import SignedIn
from tests.runtime.nodes import graph
from tests.support.clock import WEB_START

TODAY = WEB_START.date()
GRAPH = graph(
    [
        ("t", "test.trigger", {"event_type": "signed.up"}),
        ("s", "test.split", {"percent_a": 50}),
        ("a", "test.email", {"subject": "Hej Åsa"}),
        ("b", "test.wait", {"hours": 24}),
    ],
    [("t", "next", "s"), ("s", "a", "a"), ("s", "b", "b")],
)


async def seed(editor: Editor, sessions: async_sessionmaker[AsyncSession]) -> dict[int, int]:
    """Two published versions with known counts; returns version number -> id."""
    register_test_types(editor.client)
    registry = editor.client.app.state.runtime.registry
    async with sessions() as db, db.begin():
        flow = await db.get(flows.Flow, editor.flow_id)
        assert flow is not None
        flow.draft_graph = GRAPH
    for note in ("first", "second"):
        async with sessions() as db, db.begin():
            await flows.publish(db, editor.flow_id, registry, note=note)
    async with sessions() as db, db.begin():
        ids = dict((await db.execute(select(FlowVersion.number, FlowVersion.id))).all())

        def counter(
            version: int, node: str, metric: str, count: int, *, port: str = "", days_ago: int = 0
        ) -> dict[str, Any]:
            return {
                "flow_id": editor.flow_id,
                "flow_version_id": ids[version],
                "node_id": node,
                "metric": metric,
                "port": port,
                "day": TODAY - timedelta(days=days_ago),
                "count": count,
            }

        await db.execute(
            insert(FlowResult),
            [
                counter(1, "t", "reached", 10),
                counter(1, "t", "left", 10, port="next"),
                counter(1, "s", "reached", 10),
                counter(1, "s", "left", 6, port="a"),
                counter(1, "s", "left", 4, port="b"),
                counter(1, "a", "reached", 6),
                counter(1, "a", "sent", 5),
                counter(1, "a", "withheld", 1),
                counter(1, "a", "delivered", 4),
                counter(1, "a", "opened", 2),
                counter(1, "a", "clicked", 1),
                counter(1, "a", "bounced", 1),
                counter(1, "b", "reached", 4),
                counter(1, "b", "failed", 1),
                # Version 2, and a day long before the default 30 days.
                counter(2, "t", "reached", 3),
                counter(2, "s", "reached", 3),
                counter(2, "s", "left", 3, port="a"),
                counter(2, "a", "reached", 3),
                counter(1, "t", "reached", 100, days_ago=90),
            ],
        )
        await db.execute(
            insert(Journey),
            [
                {
                    "flow_id": editor.flow_id,
                    "flow_version_id": ids[1],
                    "node_id": "b",
                    "status": "waiting",
                },
                {
                    "flow_id": editor.flow_id,
                    "flow_version_id": ids[1],
                    "node_id": "b",
                    "status": "waiting",
                },
                {
                    "flow_id": editor.flow_id,
                    "flow_version_id": ids[2],
                    "node_id": "b",
                    "status": "active",
                },
                {
                    "flow_id": editor.flow_id,
                    "flow_version_id": ids[1],
                    "node_id": "b",
                    "status": "completed",
                },
            ],
        )
    return ids


def by_node(body: dict[str, Any]) -> dict[str, dict[str, tuple[int, str]]]:
    return {
        node["id"]: {item["metric"]: (item["value"], item["text"]) for item in node["items"]}
        for node in body["nodes"]
    }


async def test_overlay_counts_every_version_in_the_last_30_days(
    editor: Editor, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await seed(editor, sessions)
    response = await editor.client.get(editor.base + "/results")
    assert response.status_code == 200, response.text
    body = response.json()
    nodes = by_node(body)
    assert nodes["t"]["reached"] == (13, "13")
    assert nodes["b"]["waiting"] == (3, "3")
    assert nodes["b"]["failed"] == (1, "1")
    assert nodes["a"]["sent"] == (5, "5")
    # Rates: delivered and bounced over sent, the rest over delivered.
    assert nodes["a"]["delivered"] == (4, "4 (80%)")
    assert nodes["a"]["opened"] == (2, "2 (50%)")
    assert nodes["a"]["clicked"] == (1, "1 (25%)")
    assert nodes["a"]["bounced"] == (1, "1 (20%)")
    assert "sent" not in nodes["s"]
    edges = {(e["source"], e["port"]): e["value"] for e in body["edges"]}
    assert edges == {("t", "next"): 10, ("s", "a"): 9, ("s", "b"): 4}


async def test_overlay_filters_by_version_and_dates(
    editor: Editor, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await seed(editor, sessions)
    nodes = by_node((await editor.client.get(editor.base + "/results?version=2")).json())
    assert nodes["t"]["reached"][0] == 3
    assert nodes["b"]["waiting"][0] == 1
    long_ago = (TODAY - timedelta(days=90)).isoformat()
    body = (await editor.client.get(f"{editor.base}/results?from={long_ago}&to={long_ago}")).json()
    assert by_node(body)["t"]["reached"][0] == 100
    assert by_node(body)["s"]["reached"][0] == 0


async def test_overlay_numbers_follow_the_readers_language(
    editor: Editor, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await seed(editor, sessions)
    async with sessions() as db, db.begin():
        await db.execute(
            insert(FlowResult).values(
                flow_id=editor.flow_id,
                flow_version_id=(await db.scalar(select(FlowVersion.id).limit(1))),
                node_id="t",
                metric="reached",
                port="",
                day=TODAY - timedelta(days=1),
                count=12000,
            )
        )
    response = await editor.client.get(editor.base + "/results", headers={"Accept-Language": "sv"})
    body = response.json()
    text = by_node(body)["t"]["reached"][1]
    assert text.replace("\xa0", " ") == "12 013", text  # Swedish groups with a (no-break) space


async def test_a_bad_filter_is_a_400_that_says_what_to_write(
    editor: Editor, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await seed(editor, sessions)
    for query, words in (
        ("from=27/11/2026", "YYYY-MM-DD"),
        ("from=2026-12-01&to=2026-11-01", "after"),
        ("from=2020-01-01&to=2026-01-01", "year"),
        ("version=9", "version"),
        ("version=abc", "version"),
    ):
        response = await editor.client.get(f"{editor.base}/results?{query}")
        assert response.status_code == 400, query
        assert words in response.json()["error"]["message"], query
    page = await editor.client.get(f"/flows/{editor.flow_id}?version=9")
    assert page.status_code == 400
    assert "no such version" in page.text


async def test_flow_page_tables_carry_the_rollup(
    editor: Editor, sessions: async_sessionmaker[AsyncSession], signed_in: SignedIn
) -> None:
    await seed(editor, sessions)
    viewer = await signed_in(Role.viewer)
    page = await viewer.get(f"/flows/{editor.flow_id}")
    assert page.status_code == 200
    html = page.text
    assert 'data-chart="bar"' in html and 'data-chart="line"' in html
    assert 'data-chart="stacked"' in html  # the split's two ways
    assert '<td data-value="13">13</td>' in html  # reached the trigger, both versions
    assert '<td data-value="3">3</td>' in html  # waiting now at b
    entered = html.split("Customers who entered, per day")[1]
    assert entered.count('data-value="0"') == 29
    assert '<td data-value="13">13</td>' in entered
