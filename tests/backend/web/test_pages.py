"""What the pages show: flows with counts, contacts search and paging, runs and their steps."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import (
    AuditEntry,
    Contact,
    Flow,
    FlowVersion,
    Journey,
    Role,
    SiteKey,
    Step,
    User,
    utcnow,
)
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import post_form


async def _flow_with_journeys(sessions: async_sessionmaker[AsyncSession]) -> tuple[Flow, Journey]:
    async with sessions() as db, db.begin():
        flow = Flow(name="Whitepaper follow-up", phase="onboard", status="active")
        db.add(flow)
        await db.flush()
        graph = {"nodes": [{"id": "send_email", "type": "action.email", "label": "Welcome mail"}]}
        version = FlowVersion(flow_id=flow.id, number=1, graph=graph)
        db.add(version)
        await db.flush()
        flow.published_version_id = version.id
        anna = Contact(email="anna@example.com", first_name="Anna", last_name="Berg")
        db.add(anna)
        await db.flush()
        statuses = ["active", "waiting", "completed", "completed", "failed"]
        journeys = [
            Journey(
                flow_id=flow.id,
                flow_version_id=version.id,
                contact_id=anna.id if status == "failed" else None,
                visitor_id=None,
                status=status,
                node_id="send_email",
                last_error="SMTP said no" if status == "failed" else None,
                updated_at=utcnow() + timedelta(seconds=i),
            )
            for i, status in enumerate(statuses)
        ]
        db.add_all(journeys)
        await db.flush()
        failed = journeys[-1]
        db.add(
            Step(
                journey_id=failed.id,
                node_id="send_email",
                visit=1,
                node_type="touchflow.action.email",
                status="error",
                error="SMTP said no",
                attempts=5,
            )
        )
    return flow, failed


async def test_flows_list_shows_phase_status_and_journey_counts(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    flow, _failed = await _flow_with_journeys(sessions)
    client = await signed_in(Role.viewer)
    page = (await client.get("/flows")).text
    assert "Whitepaper follow-up" in page
    assert "Onboard" in page and "Active" in page
    row = page.split("Whitepaper follow-up")[1].split("</tr>")[0]
    cells = [cell.split("<")[0] for cell in row.split('<td class="num">')[1:]]
    assert cells == ["5", "2", "2"]  # entered, active (active+waiting), completed
    assert "Never" not in row
    detail = (await client.get(f"/flows/{flow.id}")).text
    assert "v1" in detail and "live" in detail


async def test_empty_flows_page_invites_a_marketer_to_create_one(signed_in: SignedIn) -> None:
    client = await signed_in(Role.marketer)
    page = (await client.get("/flows")).text
    assert "No flows yet" in page
    assert "Create your first flow" in page


async def test_runs_filter_by_status_and_show_errors(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _flow, failed = await _flow_with_journeys(sessions)
    client = await signed_in(Role.viewer)
    everything = (await client.get("/runs")).text
    assert "5 runs" in everything
    assert "Welcome mail" in everything, "nodes are named as the marketer labelled them"
    only_failed = await client.get("/runs?status=failed", headers={"HX-Request": "true"})
    assert "1 run" in only_failed.text and "SMTP said no" in only_failed.text
    assert "<html" not in only_failed.text  # the results block only
    assert "anna@example.com" in only_failed.text
    detail = (await client.get(f"/runs/{failed.id}")).text
    assert "touchflow.action.email" in detail and "Welcome mail" in detail
    assert "SMTP said no" in detail
    assert (await client.get("/runs/99999")).status_code == 404


async def test_contacts_search_and_paging(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as db, db.begin():
        db.add_all(
            Contact(email=f"person{i:02d}@example.com", first_name=f"P{i:02d}", last_name="Lund")
            for i in range(30)
        )
        db.add(Contact(email="zlatan@example.com", first_name="Zlatan", last_name="Malmö"))
    client = await signed_in(Role.viewer)
    first = (await client.get("/contacts")).text
    assert "31 contacts" in first and "Page 1 of 2" in first
    second = (await client.get("/contacts?page=2")).text
    assert "Page 2 of 2" in second
    assert second.count("@example.com") == 6
    found = await client.get("/contacts?q=ZLATAN", headers={"HX-Request": "true"})
    assert "1 contact" in found.text and "zlatan@example.com" in found.text
    assert "person01" not in found.text
    nothing = (await client.get("/contacts?q=nobody-here")).text
    assert "No contact matches" in nothing


async def test_site_keys_accept_only_real_origins(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.admin)
    bad = await post_form(
        client,
        "/settings/site-keys",
        {"name": "Shop", "origins": "shop.example.com"},
        htmx=True,
    )
    assert bad.status_code == 422
    assert "is not a web origin" in bad.text
    good = await post_form(
        client,
        "/settings/site-keys",
        {"name": "Shop", "origins": "https://Shop.Example.com/\nhttp://localhost:3000"},
        htmx=True,
    )
    assert good.status_code == 200
    async with sessions() as db:
        key = await db.scalar(select(SiteKey))
    assert key is not None and key.key.startswith("tfs_")
    assert key.allowed_origins == ["https://shop.example.com", "http://localhost:3000"]
    assert key.key in good.text
    changed = await post_form(
        client, f"/settings/site-keys/{key.id}", {"origins": "https://www.example.se"}, htmx=True
    )
    assert changed.status_code == 200
    async with sessions() as db:
        key = await db.get(SiteKey, key.id)
        actions = (await db.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all()
    assert key is not None and key.allowed_origins == ["https://www.example.se"]
    assert actions[-2:] == ["site_key.created", "site_key.changed"]


async def test_audit_log_lists_admin_actions(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.admin)
    await post_form(
        client,
        "/settings/users",
        {"email": "vera@example.com", "password": "long enough pw", "role": "viewer"},
    )
    page = (await client.get("/settings/audit")).text
    assert "<code>user.created</code>" in page and "<code>auth.login</code>" in page
    filtered = (await client.get("/settings/audit?action=user.")).text
    # (Every action name is offered in the filter's pick list; the rows are the entries.)
    assert "<code>user.created</code>" in filtered and "<code>auth.login</code>" not in filtered
    async with sessions() as db:
        assert await db.scalar(select(User).where(User.email == "vera@example.com"))
