"""The demo's board: linked to the demo flow's nodes, followed up from real runs, gaps to show."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.demo import DEMO_FLOW_NAME, DEMO_FORM_SLUG, load_demo
from backend.lifecycle.demo import DEMO_PROCESS
from backend.lifecycle.followup import follow_up
from backend.lifecycle.gaps import load_gaps
from backend.models import Flow, LifecycleProcess, Role, Touchpoint
from runtime.engine import build_runtime
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import MovableClock, settings_for
from tests.backend.web.test_forms import answers


async def test_the_demo_board_follows_the_demo_flow(
    signed_in: SignedIn,
    client: AsyncTestClient[Litestar],
    db_url: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: MovableClock,
) -> None:
    settings = settings_for(db_url)
    await load_demo(settings, admin_password="demo password 1", contacts=0)
    again = await load_demo(settings, admin_password="demo password 1", contacts=0)
    assert any("already there" in line for line in again.lines if "board" in line)
    for n in range(3):
        data = answers(clock, email=f"besökare{n}@example.com", first_name=f"Åsa{n}")
        assert (await client.post(f"/f/{DEMO_FORM_SLUG}", data=data)).status_code == 200
    await build_runtime(settings, sessions=sessions, clock=clock).drain()

    async with sessions() as db:
        process = (
            await db.scalars(select(LifecycleProcess).where(LifecycleProcess.name == DEMO_PROCESS))
        ).one()
        flow = (await db.scalars(select(Flow).where(Flow.name == DEMO_FLOW_NAME))).one()
        cards = {
            card.title: card
            for card in await db.scalars(
                select(Touchpoint).where(Touchpoint.process_id == process.id)
            )
        }
        follow = await follow_up(db, list(cards.values()), clock.now())
        report = await load_gaps(db, total_label="All")
    assert flow.process_id == process.id
    guide = follow[cards["Send the guide"].id]
    assert guide.reached == 3 and guide.warnings == []
    # Nobody has waited two days yet, so the reminder has had no traffic: a warning says so.
    assert follow[cards["Reminder"].id].reached == 0
    assert "No customer reached in the last 30 days." in follow[cards["Reminder"].id].warnings
    _pid, demo_gaps = next(
        (pid, g) for phase in report.phases for pid, g in phase.processes if pid == process.id
    )
    assert [c.title for c in demo_gaps.unmet] == [
        "Prices before I talk to sales",
        "A text when my trial account is ready",
    ]
    assert demo_gaps.customer_coverage == 60
    assert [c.title for c in demo_gaps.could_automate] == ["Monthly newsletter"]

    viewer = await signed_in(Role.viewer)
    board = await viewer.get(f"/lifecycle/processes/{process.id}")
    assert board.status_code == 200 and "3 reached in 30 days" in board.text
