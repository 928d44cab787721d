"""Publishing from the editor: validation errors naming nodes, frozen versions, lifecycle."""

from __future__ import annotations

from sqlalchemy import func, select

from backend.models import AuditEntry, Flow, FlowVersion, Journey
from tests.backend.editor.conftest import Editor


async def _build(editor: Editor, subject: str) -> None:
    await editor.post("/nodes", {"type": "test.trigger", "x": 0, "y": 0})
    await editor.post("/nodes", {"type": "test.email", "x": 300, "y": 0})
    await editor.post("/edges", {"source": "trigger", "port": "next", "target": "email"})
    await editor.post("/nodes/trigger/config", {"cfg.event_type": "form.submitted"})
    await editor.post("/nodes/email/config", {"cfg.subject": subject})


async def _versions(editor: Editor) -> int:
    async with editor.sessions() as db:
        count = await db.scalar(select(func.count()).where(FlowVersion.flow_id == editor.flow_id))
    return int(count or 0)


async def test_publishing_an_invalid_draft_lists_problems_by_node(editor: Editor) -> None:
    await editor.post("/nodes", {"type": "test.email", "x": 0, "y": 0})
    response = await editor.post("/publish", {})
    assert response.status_code == 200
    html = response.text
    assert "Not published: fix these 2 problems first." in html
    assert "the flow needs a trigger to enroll anyone" in html
    # Each node problem links to its node on the canvas.
    assert 'data-select-node="email"' in html and "subject: Fill this in." in html
    assert await _versions(editor) == 0


async def test_publishing_freezes_a_version_and_lists_it(editor: Editor) -> None:
    await _build(editor, "Welcome")
    response = await editor.post("/publish", {"note": "first cut"})
    assert response.status_code == 200, response.text
    assert "Published version 1." in response.text
    assert 'id="versions"' in response.text and "v1" in response.text
    assert "first cut" in response.text
    flow = await editor.flow()
    assert flow.status == "active"
    # Editing the draft afterwards leaves the version as it was.
    await editor.post("/nodes/email/config", {"cfg.subject": "Changed"})
    async with editor.sessions() as db:
        version = await db.scalar(select(FlowVersion).where(FlowVersion.flow_id == flow.id))
        assert version is not None
        subjects = [n["config"].get("subject") for n in version.graph["nodes"]]
    assert "Welcome" in subjects and "Changed" not in subjects
    second = await editor.post("/publish", {})
    assert "Published version 2." in second.text
    assert await _versions(editor) == 2


async def test_publishing_what_you_have_not_seen_is_a_conflict(editor: Editor) -> None:
    await _build(editor, "Welcome")
    stale = (await editor.revision()) - 1
    response = await editor.post("/publish", {}, revision=stale)
    assert response.status_code == 409
    assert await _versions(editor) == 0


async def test_pause_resume_and_archive(editor: Editor) -> None:
    await _build(editor, "Welcome")
    early = await editor.post("/lifecycle", {"action": "resume"})
    assert early.status_code == 409
    assert "Only a paused flow can be resumed." in early.text
    await editor.post("/publish", {})
    paused = await editor.post("/lifecycle", {"action": "pause"})
    assert paused.status_code == 200
    assert (await editor.flow()).status == "paused"
    assert 'data-value="resume"' in paused.text
    await editor.post("/lifecycle", {"action": "resume"})
    assert (await editor.flow()).status == "active"
    archived = await editor.post("/lifecycle", {"action": "archive"})
    assert archived.headers["HX-Redirect"] == editor.base
    assert (await editor.flow()).status == "archived"
    page = (await editor.client.get(editor.base)).text
    assert 'data-readonly="true"' in page and "archived" in page
    refused = await editor.post("/nodes", {"type": "test.email", "x": 0, "y": 0})
    assert refused.status_code == 409
    assert "archived" in refused.text
    bad = await editor.post("/lifecycle", {"action": "explode"})
    assert bad.status_code == 422


async def test_publishing_a_running_flow_says_who_stays_on_the_old_version(
    editor: Editor,
) -> None:
    await _build(editor, "Welcome")
    await editor.post("/publish", {})
    async with editor.sessions() as db, db.begin():
        version = await db.scalar(select(FlowVersion).where(FlowVersion.flow_id == editor.flow_id))
        assert version is not None
        db.add_all(
            Journey(
                flow_id=editor.flow_id, flow_version_id=version.id, status=status, node_id="email"
            )
            for status in ("active", "waiting", "completed")
        )
    page = (await editor.client.get(editor.base)).text
    assert 'title="2 customers are in this flow right now"' in page
    dialog = (await editor.get("/publish")).text
    assert "2 customers are in this flow right now." in dialog  # the completed one is not


async def _in_flight(editor: Editor, *node_ids: str) -> None:
    """Customers on the live version, one at each of ``node_ids``."""
    async with editor.sessions() as db, db.begin():
        flow = await db.get(Flow, editor.flow_id)
        assert flow is not None and flow.published_version_id is not None
        db.add_all(
            Journey(
                flow_id=flow.id,
                flow_version_id=flow.published_version_id,
                node_id=node_id,
                status="waiting",
            )
            for node_id in node_ids
        )


async def _journey_versions(editor: Editor) -> list[int]:
    async with editor.sessions() as db:
        rows = await db.scalars(
            select(FlowVersion.number)
            .join(Journey, Journey.flow_version_id == FlowVersion.id)
            .order_by(Journey.id)
        )
        return list(rows)


async def test_publishing_over_running_journeys_shows_who_could_move(editor: Editor) -> None:
    await _build(editor, "Welcome")
    await editor.post("/publish", {})
    page = (await editor.get()).text
    assert 'data-action="publish" data-dialog="true"' not in page  # nobody in the flow yet
    await _in_flight(editor, "email", "email", "retired")
    page = (await editor.get()).text
    assert 'data-action="publish" data-dialog="true"' in page
    dialog = (await editor.get("/publish")).text
    assert "3 customers are in this flow right now." in dialog
    assert "Move 2 customers to the new version" in dialog
    assert "1 customer stays on their version either way:" in dialog
    assert "1 at step retired, which the draft no longer has" in dialog
    assert await _journey_versions(editor) == [1, 1, 1]  # looking changes nothing


async def test_publishing_can_move_running_journeys_or_keep_them(editor: Editor) -> None:
    await _build(editor, "Welcome")
    await editor.post("/publish", {})
    await _in_flight(editor, "email", "retired")
    kept = await editor.post("/publish", {"journeys": "keep"})
    assert "Published version 2." in kept.text and "moved" not in kept.text
    assert await _journey_versions(editor) == [1, 1]
    moved = await editor.post("/publish", {"journeys": "move"})
    assert moved.status_code == 200, moved.text
    assert "Published version 3. 1 customer moved to it. 1 stays on their version." in moved.text
    assert 'id="panel"' in moved.text  # the dialog closes
    assert await _journey_versions(editor) == [3, 1]
    async with editor.sessions() as db:
        entry = await db.scalar(
            select(AuditEntry).where(AuditEntry.action == "flow.journeys_moved")
        )
    assert entry is not None and entry.actor_type == "user"
    assert entry.details == {"version": 3, "moved": 1, "missing": {"retired": 1}, "busy": 0}


async def test_an_unknown_choice_for_running_journeys_is_refused(editor: Editor) -> None:
    await _build(editor, "Welcome")
    response = await editor.post("/publish", {"journeys": "teleport"})
    assert response.status_code == 422
    assert "keep their version or move" in response.text
    assert await _versions(editor) == 0
