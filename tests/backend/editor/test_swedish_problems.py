"""English left in Swedish: graph problems with values, pydantic's rarer messages, chart days."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Role, User
from runtime.flows import create_flow, publish
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import MovableClock

SWEDISH_MONTHS = ("jan.", "feb.", "mars", "apr.", "maj", "juni")
SWEDISH_MONTHS += ("juli", "aug.", "sep.", "okt.", "nov.", "dec.")


def _node(node_id: str, type_id: str, config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": type_id, "config": config, "position": {"x": 0, "y": 0}}


async def _swedish_marketer(signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]):  # type: ignore[no-untyped-def]
    client = await signed_in(Role.marketer)
    async with sessions() as db, db.begin():
        marketer = User.email == "marketer@example.com"
        await db.execute(update(User).where(marketer).values(locale="sv"))
    return client


async def test_graph_problems_with_values_read_in_swedish(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await _swedish_marketer(signed_in, sessions)
    graph = {
        "nodes": [
            _node("start", "trigger.event", {"event_type": "signup"}),
            _node("hook", "action.webhook", {"url": "https://x.example", "include_contact": []}),
            _node("tag1", "action.tag", {"add": ["a"]}),
            _node("tag2", "action.tag", {"add": ["b"]}),
            _node("odd", "gone.plugin", {}),
        ],
        "edges": [
            {"source": "start", "port": "next", "target": "hook"},
            {"source": "hook", "port": "next", "target": "ghost"},
            {"source": "tag1", "port": "maybe", "target": "tag2"},
            {"source": "tag1", "port": "next", "target": "tag2"},
            {"source": "tag2", "port": "next", "target": "tag1"},
        ],
    }
    async with sessions() as db, db.begin():
        flow = await create_flow(db, "Välkomst", graph=graph)
    page = (await client.get(f"/flows/{flow.id}/edit")).text
    for swedish in (
        "utgången &#39;next&#39; leder till steget &#39;ghost&#39; som saknas",
        "det här steget har ingen utgång &#39;maybe&#39;",
        "den här slingan saknar väntan och skulle aldrig pausa",
        "okänd stegtyp &#39;gone.plugin&#39;",
        "Välj ja eller nej.",
    ):
        assert swedish in page, swedish
    for english in (
        "leads to missing node",
        "has no output port",
        "this loop has no wait",
        "unknown node type",
        "Input should be a valid boolean",
    ):
        assert english not in page, page[page.index(english) - 300 : page.index(english) + 100]


async def test_a_malformed_draft_reads_in_swedish(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await _swedish_marketer(signed_in, sessions)
    start = {**_node("start", "trigger.event", {"event_type": "signup"}), "label": ["a", "list"]}
    graph = {"nodes": [start], "edges": []}
    async with sessions() as db, db.begin():
        flow = await create_flow(db, "Trasig", graph=graph)
    page = (await client.get(f"/flows/{flow.id}/edit")).text
    assert "Ange text." in page
    assert "Input should be a valid string" not in page


async def test_the_entries_chart_labels_days_in_swedish(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    client = await _swedish_marketer(signed_in, sessions)
    graph = {
        "nodes": [
            _node("start", "trigger.event", {"event_type": "signup"}),
            _node("tag", "action.tag", {"add": ["ny"]}),
        ],
        "edges": [{"source": "start", "port": "next", "target": "tag"}],
    }
    async with sessions() as db, db.begin():
        flow = await create_flow(db, "Välkomst", graph=graph)
        await publish(db, flow.id, client.app.state.runtime.registry, None)
    page = (await client.get(f"/flows/{flow.id}")).text
    chart = page[page.index('data-chart="line"') :]  # the entries-per-day chart's table
    chart = chart[: chart.index("</table>")]
    first = clock.now() - timedelta(days=29)
    assert not re.search(r"\d{4}-\d{2}-\d{2}", chart), chart
    assert f"{first.day} {SWEDISH_MONTHS[first.month - 1]} {first.year}" in chart
