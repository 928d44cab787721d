"""The lifecycle pages over HTTP: roles, the board, the revision rule, links, gaps, CSV."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import AuditEntry, Flow, LifecycleProcess, Role, Touchpoint, TouchpointLink
from tests.backend.lifecycle.helpers import card, first_process, flow
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import csrf_token, post_form

Client = AsyncTestClient[Litestar]


async def _process(sessions: async_sessionmaker[AsyncSession]) -> LifecycleProcess:
    async with sessions() as db, db.begin():
        return await first_process(db)


async def _add(client: Client, process_id: int, **fields: str) -> int:
    data = {"title": "Kvitto när ärendet kommer in", "category": "customer", "priority": "1"}
    data.update(fields)
    response = await post_form(
        client, f"/lifecycle/processes/{process_id}/touchpoints", data, form_page="/lifecycle"
    )
    assert response.status_code == 303, response.text
    match = re.search(r"#card-(\d+)", response.headers["location"])
    assert match
    return int(match.group(1))


async def test_marketer_builds_a_board_and_every_change_is_audited(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.marketer)
    page = await client.get("/lifecycle")
    assert page.status_code == 200 and "Attract &amp; convert" in page.text
    process = await _process(sessions)
    first = await _add(client, process.id)
    second = await _add(client, process.id, title="Välkomstmejl", category="company")
    board = await client.get(f"/lifecycle/processes/{process.id}")
    assert board.status_code == 200
    assert board.text.index("Kvitto när") < board.text.index("Välkomstmejl")
    # The category is written out, not only shown as a colour.
    assert "In the customer's interest" in board.text
    moved = await post_form(
        client,
        f"/lifecycle/touchpoints/{second}/move",
        {"revision": "1", "offset": "-1"},
        form_page="/lifecycle",
    )
    assert moved.status_code == 303
    board = await client.get(f"/lifecycle/processes/{process.id}")
    assert board.text.index("Välkomstmejl") < board.text.index("Kvitto när")
    filtered = await client.get(f"/lifecycle/processes/{process.id}?category=company")
    assert "Välkomstmejl" in filtered.text and "Kvitto när" not in filtered.text
    async with sessions() as db:
        actions = list(await db.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions[-3:] == ["touchpoint.created", "touchpoint.created", "touchpoint.moved"]
    assert first != second


async def test_a_stale_save_answers_409_and_keeps_the_first(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.marketer)
    process = await _process(sessions)
    card_id = await _add(client, process.id)
    form = {
        "title": "Kvitto inom en timme",
        "category": "customer",
        "priority": "1",
        "status": "planned",
        "revision": "1",
    }
    first = await post_form(
        client, f"/lifecycle/touchpoints/{card_id}", form, form_page="/lifecycle"
    )
    assert first.status_code == 303
    second = await post_form(
        client,
        f"/lifecycle/touchpoints/{card_id}",
        {**form, "title": "Kvittens"},
        form_page="/lifecycle",
    )
    assert second.status_code == 409
    assert "Someone else changed" in second.text and "revision 2" in second.text
    token = await csrf_token(client, "/lifecycle")
    dragged = await client.post(
        f"/lifecycle/touchpoints/{card_id}/move",
        data={"revision": "1", "index": "0"},
        headers={"X-CSRF-Token": token, "Accept": "application/json"},
    )
    assert dragged.status_code == 409
    assert "Someone else changed" in dragged.json()["error"]["message"]
    async with sessions() as db:
        kept = await db.get(Touchpoint, card_id)
        assert kept is not None and kept.title == "Kvitto inom en timme" and kept.revision == 2


async def test_viewer_reads_but_cannot_change(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    process = await _process(sessions)
    async with sessions() as db, db.begin():
        note = await card(db, process.id, "Kvitto", "customer")
    client = await signed_in(Role.viewer)
    board = await client.get(f"/lifecycle/processes/{process.id}")
    assert board.status_code == 200 and "Kvitto" in board.text
    assert 'draggable="true"' not in board.text and "Add a touchpoint" not in board.text
    refused = await post_form(
        client,
        f"/lifecycle/touchpoints/{note.id}/move",
        {"revision": "1", "offset": "1"},
        form_page="/lifecycle",
    )
    assert refused.status_code == 403


async def test_bad_input_gets_a_clear_4xx(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.marketer)
    process = await _process(sessions)
    bad = await post_form(
        client,
        f"/lifecycle/processes/{process.id}/touchpoints",
        {"title": "", "category": "boss"},
        form_page="/lifecycle",
    )
    assert bad.status_code == 422 and "Give the touchpoint a title." in bad.text
    missing = await client.get("/lifecycle/processes/99999")
    assert missing.status_code == 404
    no_revision = await post_form(
        client,
        f"/lifecycle/touchpoints/{await _add(client, process.id)}",
        {"title": "x"},
        form_page="/lifecycle",
    )
    assert no_revision.status_code == 400
    in_use = await post_form(
        client,
        "/lifecycle/plan",
        {"action": "retire_phase", "phase_id": str(process.phase_id)},
        form_page="/lifecycle",
    )
    assert in_use.status_code == 409 and "move or retire them first" in in_use.text


async def test_link_follow_up_and_a_flow_from_a_touchpoint(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.marketer)
    process = await _process(sessions)
    card_id = await _add(
        client, process.id, title="Välkomstmejl", category="company", status="automated"
    )
    async with sessions() as db, db.begin():
        made = await flow(
            db,
            "Välkomst",
            "paused",
            {"nodes": [{"id": "mail1", "type": "action.email"}], "edges": []},
        )
    wrong = await post_form(
        client,
        f"/lifecycle/touchpoints/{card_id}/links",
        {"flow_id": str(made.id), "node_id": "nope"},
        form_page="/lifecycle",
    )
    assert wrong.status_code == 422 and "has no node nope" in wrong.text
    linked = await post_form(
        client,
        f"/lifecycle/touchpoints/{card_id}/links",
        {"flow_id": str(made.id), "node_id": "mail1"},
        form_page="/lifecycle",
    )
    assert linked.status_code == 303
    page = await client.get(f"/lifecycle/touchpoints/{card_id}")
    assert "The flow “Välkomst” is paused." in page.text
    assert "No customer reached in the last 30 days." in page.text
    drafted = await post_form(
        client, f"/lifecycle/touchpoints/{card_id}/flow", {}, form_page="/lifecycle"
    )
    assert drafted.status_code == 303
    async with sessions() as db:
        new_flow = await db.scalar(select(Flow).where(Flow.name == "Välkomstmejl"))
        assert new_flow is not None
        assert new_flow.status == "draft" and new_flow.phase == "attract"
        assert new_flow.process_id == process.id
        assert [n["type"] for n in new_flow.draft_graph["nodes"]] == ["trigger.form_submitted"]
        links = list(await db.scalars(select(TouchpointLink.flow_id)))
        assert sorted(links) == sorted([made.id, new_flow.id])


async def test_gap_page_and_csv_round_trip(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.marketer)
    process = await _process(sessions)
    await _add(
        client,
        process.id,
        title='=HYPERLINK("http://x")',
        category="customer",
        owner="Åsa Öberg",
        channels="sms",
    )
    gaps = await client.get("/lifecycle/gaps")
    assert (
        gaps.status_code == 200
        and 'id="gap-table"' in gaps.text
        and 'data-chart="bar"' in gaps.text
    )
    assert "0 %" in gaps.text
    exported = await client.get(f"/lifecycle/processes/{process.id}/export.csv")
    assert exported.status_code == 200
    assert "'=HYPERLINK" in exported.text and "Åsa Öberg" in exported.text
    token = await csrf_token(client, "/lifecycle")
    imported = await client.post(
        f"/lifecycle/processes/{process.id}/import",
        files={"file": ("board.csv", exported.text.encode(), "text/csv")},
        headers={"X-CSRF-Token": token},
        follow_redirects=False,
    )
    assert imported.status_code == 303, imported.text
    async with sessions() as db:
        titles = list(await db.scalars(select(Touchpoint.title).order_by(Touchpoint.id)))
    assert titles == ['=HYPERLINK("http://x")'] * 2
    broken = await client.post(
        f"/lifecycle/processes/{process.id}/import",
        files={"file": ("board.csv", b"title,category\nx,boss\n", "text/csv")},
        headers={"X-CSRF-Token": token},
        follow_redirects=False,
    )
    assert broken.status_code == 422 and "Row 2" in broken.text
    printed = await client.get(f"/lifecycle/processes/{process.id}/print")
    assert printed.status_code == 200 and "Åsa Öberg" in printed.text


async def test_the_editor_panel_fragment_links_a_node(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    process = await _process(sessions)
    async with sessions() as db, db.begin():
        note = await card(db, process.id, "Bekräftelse", "company")
        made = await flow(db, "Välkomst", "draft", {"nodes": [{"id": "mail"}], "edges": []})
    client = await signed_in(Role.marketer)
    path = f"/lifecycle/flows/{made.id}/nodes/mail/touchpoints"
    empty = await client.get(path)
    assert empty.status_code == 200 and "No touchpoint of the lifecycle plan yet." in empty.text
    linked = await post_form(
        client, path, {"action": "link", "touchpoint_id": str(note.id)}, form_page="/lifecycle"
    )
    assert linked.status_code == 200
    assert "Unlink" in linked.text and "Bekräftelse" in linked.text
    assert (
        await client.get(f"/lifecycle/flows/{made.id}/nodes/other/touchpoints")
    ).status_code == 404
    unlinked = await post_form(
        client, path, {"action": "unlink", "touchpoint_id": str(note.id)}, form_page="/lifecycle"
    )
    assert "No touchpoint of the lifecycle plan yet." in unlinked.text
    async with sessions() as db:
        actions = list(await db.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions[-2:] == ["touchpoint.linked", "touchpoint.unlinked"]


async def test_plan_page_edits_and_horizons(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.marketer)
    assert (await client.get("/lifecycle")).status_code == 200

    async def change(data: dict[str, str], path: str = "/lifecycle/plan") -> int:
        response = await post_form(client, path, data, form_page="/lifecycle")
        return response.status_code

    assert await change({"action": "template", "template": "b2b"}) == 303
    assert await change({"action": "add_phase", "name": "Återvinn", "flow_phase": "retain"}) == 303
    assert await change({"action": "add_phase", "name": "X", "flow_phase": "nope"}) == 422
    plan = await client.get("/lifecycle")
    assert "Active evaluation" in plan.text and "Återvinn" in plan.text
    process = await _process(sessions)
    assert (
        await change(
            {"action": "rename_process", "process_id": str(process.id), "name": "Webbkonvertering"}
        )
        == 303
    )
    assert await change({"action": "explode"}) == 400
    assert await change({"action": "retire_process", "process_id": "x"}) == 400
    assert (
        await change({"horizon_1": "3", "horizon_2": "9", "horizon_3": "18"}, "/lifecycle/horizons")
        == 303
    )
    bad = await post_form(
        client,
        "/lifecycle/horizons",
        {"horizon_1": "12", "horizon_2": "6", "horizon_3": "0"},
        form_page="/lifecycle",
    )
    assert bad.status_code == 422 and "from 1 to 120" in bad.text
    board = await client.get(f"/lifecycle/processes/{process.id}")
    assert "within 3 months" in board.text and "Webbkonvertering" in board.text
    phase = await client.get(f"/lifecycle/phases/{process.phase_id}")
    assert phase.status_code == 200 and "Webbkonvertering" in phase.text
    async with sessions() as db:
        actions = list(await db.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert [a for a in actions if a.startswith("lifecycle.")] == [
        "lifecycle.template_applied",
        "lifecycle.phase_added",
        "lifecycle.process_renamed",
        "lifecycle.horizons_changed",
    ]
