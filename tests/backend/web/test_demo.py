"""The demo is usable as loaded: its hosted form starts the canonical flow."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.demo import DEMO_FLOW_NAME, DEMO_FORM_SLUG, load_demo
from backend.models import Contact, Flow, Journey, OutboxMessage, Role
from runtime.engine import build_runtime
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import MovableClock, settings_for, sign_in
from tests.backend.web.test_forms import answers


async def test_the_demo_form_starts_the_canonical_flow(
    client: AsyncTestClient[Litestar],
    db_url: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: MovableClock,
) -> None:
    await load_demo(settings_for(db_url), admin_password="demo password 1", contacts=3)
    page = await client.get(f"/f/{DEMO_FORM_SLUG}")
    assert page.status_code == 200 and "Get the lifecycle guide" in page.text

    data = answers(clock, email="visitor@example.com", first_name="Vera", city="Umeå")
    sent = await client.post(f"/f/{DEMO_FORM_SLUG}", data=data)
    assert sent.status_code == 200 and "on its way" in sent.text
    # The app serves from its own event loop; drain with a runtime on the test's loop.
    await build_runtime(settings_for(db_url), sessions=sessions, clock=clock).drain()

    async with sessions() as db:
        contact = (
            await db.scalars(select(Contact).where(Contact.email == "visitor@example.com"))
        ).one()
        journey = (await db.scalars(select(Journey).where(Journey.contact_id == contact.id))).one()
        emails = (
            await db.scalars(select(OutboxMessage).where(OutboxMessage.contact_id == contact.id))
        ).all()
    assert contact.attributes.get("city") == "Umeå"
    assert journey.node_id == "opened", "waiting for the guide email to be opened"
    assert [(m.channel, m.node_id) for m in emails] == [("email", "confirm")]
    assert "Vera" in emails[0].payload["subject"]


async def test_the_flow_page_charts_who_reached_each_step(
    signed_in: SignedIn,
    db_url: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: MovableClock,
) -> None:
    await load_demo(settings_for(db_url), admin_password="demo password 1", contacts=0)
    client = await signed_in(Role.viewer)
    for n in range(3):
        data = answers(clock, email=f"v{n}@example.com", first_name=f"V{n}")
        assert (await client.post(f"/f/{DEMO_FORM_SLUG}", data=data)).status_code == 200
    runtime = build_runtime(settings_for(db_url), sessions=sessions, clock=clock)
    await runtime.drain()
    clock.advance(days=3)  # nobody opened the guide: all three get the reminder
    await runtime.drain()
    await runtime.fold_results()  # the worker's periodic job keeps the results rollup current
    await sign_in(client, "viewer@example.com")  # three idle days ended the session

    async with sessions() as db:
        flow_id = await db.scalar(select(Flow.id).where(Flow.name == DEMO_FLOW_NAME))
    page = (await client.get(f"/flows/{flow_id}")).text
    steps, ways, _messages, entered = page.split("<caption>")[1:5]
    rows = dict(re.findall(r'<th scope="row">([^<]+)</th><td data-value="(\d+)">', steps))
    assert rows["Send the guide"] == "3" and rows["Reminder"] == "3"
    assert rows["Call the lead"] == "0"
    assert '<th scope="col">timeout</th>' in ways, "the wait's way out is shown"
    assert entered.count('data-value="3"') == 1, "three entered on one day"
