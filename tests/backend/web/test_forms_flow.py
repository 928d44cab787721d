"""The canonical flow starts with a form: a submission enrolls the contact in its flow once."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Contact, Journey
from runtime import flows
from tests.backend.web.support import MovableClock
from tests.backend.web.test_forms import answers, make_form

Client = AsyncTestClient[Litestar]


async def test_submission_enrolls_the_contact_in_the_forms_flow_once(
    client: Client, app: Litestar, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    form = await make_form(sessions)
    other = await make_form(sessions, slug="other")
    graph = {
        "nodes": [
            {"id": "form", "type": "trigger.form_submitted", "config": {"form_id": form.id}},
            {"id": "tag", "type": "action.tag", "config": {"add": ["lead"]}},
        ],
        "edges": [{"source": "form", "port": "next", "target": "tag"}],
        "settings": {},
    }
    async with sessions() as db, db.begin():
        flow = await flows.create_flow(db, "Whitepaper follow-up", graph=graph)
        await flows.publish(db, flow.id, app.state.runtime.registry)
    data = answers(clock, email="lead@example.com", name="Lea")
    assert (await client.post("/f/other", data=data)).status_code == 200  # another form
    assert (await client.post("/f/signup", data=data)).status_code == 200
    assert (await client.post("/f/signup", data=data)).status_code == 200  # double click
    async with sessions() as db:
        contact = (await db.scalars(select(Contact))).one()
        journeys = (await db.scalars(select(Journey))).all()
    assert other.id != form.id
    assert [(j.flow_id, j.contact_id) for j in journeys] == [(flow.id, contact.id)]
