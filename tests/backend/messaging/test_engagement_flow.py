"""End to end: a flow emails a link and waits for its click; the tracked click wakes it."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Delivery, Event, Journey, OutboxMessage, Task
from runtime import flows
from runtime.engine import build_runtime
from tests.backend.messaging.test_public_links import _contact
from tests.runtime.nodes import graph


def _flow() -> dict[str, object]:
    return graph(
        [
            ("start", "trigger.event", {"event_type": "guide.requested"}),
            (
                "confirm",
                "action.email",
                {
                    "subject": "Your guide",
                    "body": "Here it is.",
                    "button_text": "Download",
                    "button_url": "https://shop.test/guide.pdf",
                },
            ),
            (
                "clicked",
                "wait.event",
                {"event_type": "email.clicked", "for_node": "confirm", "timeout": {"amount": 2}},
            ),
            ("call", "action.task", {"title": "Call {{ first_name }}"}),
        ],
        [("start", "next", "confirm"), ("confirm", "next", "clicked"), ("clicked", "next", "call")],
    )


async def test_a_tracked_click_wakes_the_journey_waiting_for_it(
    app: Litestar, client: AsyncTestClient[Litestar], sessions: async_sessionmaker[AsyncSession]
) -> None:
    # The app's runtime lives on the client's loop; this one drives the engine from the test's.
    rt = build_runtime(app.state.settings, sessions=sessions, clock=app.state.clock)
    contact = await _contact(sessions, first_name="Ann")
    async with sessions() as db, db.begin():
        flow = await flows.create_flow(db, "Guide", graph=_flow())
        await flows.publish(db, flow.id, rt.registry)
    await rt.ingest("guide.requested", contact_id=contact)
    await rt.drain()
    async with sessions() as db:
        message = await db.scalar(select(OutboxMessage).where(OutboxMessage.node_id == "confirm"))
        assert message is not None and message.status == "sent"
        caught = await db.get(Delivery, message.id)
        journey = await db.scalar(select(Journey))
    assert caught is not None and caught.detail is not None and journey is not None
    assert journey.status == "waiting"
    raw = caught.detail.replace("=\n", "").replace("=3D", "=")
    click = re.search(r"http://testserver\.local(/t/c/[^\"]+)\"", raw)
    assert click is not None
    response = await client.get(click.group(1), follow_redirects=False)
    assert response.headers["location"] == "https://shop.test/guide.pdf"
    await rt.drain()
    async with sessions() as db:
        task = await db.scalar(select(Task))
        assert task is not None and task.title == "Call Ann" and task.contact_id == contact
        journey = await db.get(Journey, journey.id, populate_existing=True)
        assert journey is not None and journey.status == "completed"
        clicked = await db.scalar(select(Event).where(Event.type == "email.clicked"))
    # Engagement conditions ("clicked the email of node X in flow Y") match on these.
    assert clicked is not None
    assert clicked.properties["flow_id"] == flow.id
    assert clicked.properties["node_id"] == "confirm"
