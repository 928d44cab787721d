"""A published flow for the web tests: LinkedIn page view -> wait a day -> web content."""

from __future__ import annotations

from typing import Any

from runtime import flows
from runtime.engine import Runtime

OFFER_GRAPH: dict[str, Any] = {
    "nodes": [
        {
            "id": "t",
            "type": "trigger.event",
            "config": {
                "event_type": "page.viewed",
                "where": [{"property": "utm_source", "value": "linkedin"}],
            },
        },
        {"id": "w", "type": "wait.duration", "config": {"amount": 1, "unit": "days"}},
        {
            "id": "show",
            "type": "action.web_content",
            "config": {
                "slot": "offer",
                "html": '<p class="offer">10% off<script>alert(1)</script></p>',
                "show_for": {"amount": 7, "unit": "days"},
            },
        },
    ],
    "edges": [
        {"source": "t", "port": "next", "target": "w"},
        {"source": "w", "port": "next", "target": "show"},
    ],
}


def block_graph(block_id: int) -> dict[str, Any]:
    """The same flow showing a content block from the library instead of its own HTML."""
    show = {"slot": "offer", "block_id": block_id, "show_for": {"amount": 7, "unit": "days"}}
    nodes = [
        node if node["id"] != "show" else {**node, "config": show} for node in OFFER_GRAPH["nodes"]
    ]
    return {**OFFER_GRAPH, "nodes": nodes}


async def publish_offer_flow(runtime: Runtime, graph: dict[str, Any] | None = None) -> int:
    async with runtime.sessions() as session, session.begin():
        flow = await flows.create_flow(session, "LinkedIn offer", graph=graph or OFFER_GRAPH)
        await flows.publish(session, flow.id, runtime.registry)
        return int(flow.id)
