"""The demo is usable as loaded: its hosted form starts the canonical flow."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.demo import DEMO_FORM_SLUG, load_demo
from backend.models import Contact, Journey, OutboxMessage
from runtime.engine import build_runtime
from tests.backend.web.support import MovableClock, settings_for
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
