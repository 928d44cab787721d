"""The flow page's "who takes the tasks": a fallback owner and a round-robin, checked."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Flow, Role, RoutingMember
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import add_user, post_form


async def _flow(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as db, db.begin():
        flow = Flow(name="Leads")
        db.add(flow)
        await db.flush()
        return flow.id


async def test_a_marketer_sets_the_fallback_owner_and_the_round_robin(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.marketer)
    flow_id = await _flow(sessions)
    anna = await add_user(sessions, "anna@example.com", Role.marketer)
    bo = await add_user(sessions, "bo@example.com", Role.admin)
    viewer = await add_user(sessions, "vera@example.com", Role.viewer)
    page = f"/flows/{flow_id}"
    data = {"owner_id": str(bo.id), f"round_robin-{anna.id}": "1", f"round_robin-{bo.id}": "1"}
    # A viewer cannot take tasks: ticking them is ignored.
    data[f"round_robin-{viewer.id}"] = "1"
    saved = await post_form(client, f"{page}/routing", data, form_page=page)
    assert saved.status_code == 303, saved.text
    async with sessions() as db:
        flow = await db.get(Flow, flow_id)
        members = set(await db.scalars(select(RoutingMember.user_id)))
    assert flow is not None and flow.owner_id == bo.id
    assert members == {anna.id, bo.id}

    # Untick one, keep the other: the stayer keeps their count.
    again = await post_form(
        client, f"{page}/routing", {f"round_robin-{anna.id}": "1"}, form_page=page
    )
    assert again.status_code == 303
    async with sessions() as db:
        flow = await db.get(Flow, flow_id)
        members = set(await db.scalars(select(RoutingMember.user_id)))
    assert flow is not None and flow.owner_id is None and members == {anna.id}


async def test_bad_choices_are_a_clear_400_and_viewers_cannot_route(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.marketer)
    flow_id = await _flow(sessions)
    viewer = await add_user(sessions, "vera@example.com", Role.viewer)
    page = f"/flows/{flow_id}"
    for owner in ("abc", str(viewer.id), "99999999", "9" * 40):
        bad = await post_form(client, f"{page}/routing", {"owner_id": owner}, form_page=page)
        assert bad.status_code == 400, (owner, bad.text)
        assert "Choose an active user who can take tasks." in bad.text
    missing = await post_form(client, "/flows/999999/routing", {}, form_page=page)
    assert missing.status_code == 404
