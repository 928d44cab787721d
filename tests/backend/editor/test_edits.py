"""Canvas edits through HTTP: each saves the draft and answers with the canvas fragments."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from backend.models import Role
from backend.web.editor.context import load_flow
from runtime.flows import DraftConflict, save_draft
from tests.backend.editor.conftest import Editor, register_test_types, revision_in
from tests.backend.web.conftest import SignedIn


async def _add(editor: Editor, type_id: str, x: float = 100, y: float = 80) -> str:
    before = {n["id"] for n in (await editor.flow()).draft_graph["nodes"]}
    response = await editor.post("/nodes", {"type": type_id, "x": x, "y": y})
    assert response.status_code == 200, response.text
    (new_id,) = {n["id"] for n in (await editor.flow()).draft_graph["nodes"]} - before
    return str(new_id)


async def _two_connected(editor: Editor) -> tuple[str, str]:
    trigger = await _add(editor, "test.trigger", 0, 0)
    email = await _add(editor, "test.email", 300, 0)
    response = await editor.post("/edges", {"source": trigger, "port": "next", "target": email})
    assert response.status_code == 200, response.text
    return trigger, email


async def test_adding_a_node_saves_it_and_opens_its_form(editor: Editor) -> None:
    response = await editor.post("/nodes", {"type": "test.trigger", "x": 120.5, "y": 40})
    assert response.status_code == 200, response.text
    flow = await editor.flow()
    assert flow.draft_revision == 1
    (node,) = flow.draft_graph["nodes"]
    assert node["type"] == "test.trigger"
    assert node["position"] == {"x": 120.5, "y": 40}
    html = response.text
    assert revision_in(html) == 1
    assert f'data-node-id="{node["id"]}"' in html
    # The panel arrives out of band with a form generated from the config model.
    assert 'id="panel"' in html and 'hx-swap-oob="true"' in html
    assert 'name="cfg.event_type"' in html
    # A trigger without its required event type is marked invalid on the canvas.
    assert "node-invalid" in html
    assert "Fill this in." in html


async def test_unknown_type_is_refused_with_a_message(editor: Editor) -> None:
    response = await editor.post("/nodes", {"type": "acme.nothing", "x": 0, "y": 0})
    assert response.status_code == 422
    assert "There is no step type acme.nothing." in response.text
    assert (await editor.revision()) == 0


async def test_a_stale_revision_is_a_conflict_not_a_lost_update(editor: Editor) -> None:
    node = await _add(editor, "test.trigger")
    # A second tab still on revision 0 moves the node: refused, the first save stands.
    response = await editor.post(f"/nodes/{node}/move", {"x": 999, "y": 999}, revision=0)
    assert response.status_code == 409
    assert response.headers["HX-Retarget"] == "#flash"
    assert "Not saved: this flow changed meanwhile." in response.text
    flow = await editor.flow()
    assert flow.draft_revision == 1
    assert flow.draft_graph["nodes"][0]["position"] == {"x": 100, "y": 80}


async def test_moving_a_node_saves_its_position_and_redraws_only_it(editor: Editor) -> None:
    trigger, email = await _two_connected(editor)
    other = await _add(editor, "test.email", 300, 300)
    response = await editor.post(f"/nodes/{email}/move", {"x": -40, "y": 250})
    assert response.status_code == 200
    html = response.text
    assert "left: -40.0px; top: 250.0px" in html
    placed = {n["id"]: n["position"] for n in (await editor.flow()).draft_graph["nodes"]}
    assert placed[email] == {"x": -40, "y": 250}
    # The answer: the status (new revision), the moved step and its edge, swapped by id.
    assert 'id="editor-status" class="editor-status" data-revision="5"' in html
    assert 'id="graph"' not in html and f'id="node-{other}"' not in html
    assert re.search(rf'id="node-{email}"[^>]*hx-swap-oob="true"', html, re.S)
    edge = f'id="edge-{len(trigger)}-{trigger}-next"'
    assert re.search(edge + r'[^>]*hx-swap-oob="true"', html)
    assert f'data-source="{trigger}" data-port="next" data-target="{email}"' in html


async def test_connecting_draws_a_curve_and_replaces_the_ports_old_edge(editor: Editor) -> None:
    trigger, email = await _two_connected(editor)
    other = await _add(editor, "test.email", 300, 200)
    graph = (await editor.flow()).draft_graph
    assert graph["edges"] == [{"source": trigger, "port": "next", "target": email}]
    response = await editor.post("/edges", {"source": trigger, "port": "next", "target": other})
    assert response.status_code == 200
    assert (await editor.flow()).draft_graph["edges"] == [
        {"source": trigger, "port": "next", "target": other}
    ]
    assert f'data-source="{trigger}" data-port="next" data-target="{other}"' in response.text
    assert 'class="edge-line" d="M ' in response.text


async def test_connections_that_cannot_work_are_refused(editor: Editor) -> None:
    trigger, email = await _two_connected(editor)
    into_trigger = await editor.post("/edges", {"source": email, "port": "next", "target": trigger})
    assert into_trigger.status_code == 422
    assert "A trigger starts the flow" in into_trigger.text
    no_port = await editor.post("/edges", {"source": trigger, "port": "yes", "target": email})
    assert no_port.status_code == 422
    assert "no output called yes" in no_port.text
    to_itself = await editor.post("/edges", {"source": email, "port": "next", "target": email})
    assert to_itself.status_code == 422
    assert len((await editor.flow()).draft_graph["edges"]) == 1


async def test_disconnecting_and_deleting(editor: Editor) -> None:
    trigger, email = await _two_connected(editor)
    response = await editor.post("/edges/delete", {"source": trigger, "port": "next"})
    assert response.status_code == 200
    assert (await editor.flow()).draft_graph["edges"] == []
    again = await editor.post("/edges/delete", {"source": trigger, "port": "next"})
    assert again.status_code == 422
    await editor.post("/edges", {"source": trigger, "port": "next", "target": email})
    response = await editor.post(f"/nodes/{email}/delete", {})
    assert response.status_code == 200
    graph = (await editor.flow()).draft_graph
    assert [n["id"] for n in graph["nodes"]] == [trigger]
    assert graph["edges"] == []  # the node's connections went with it


async def test_invalid_config_is_kept_shown_on_the_form_and_marked(editor: Editor) -> None:
    node = await _add(editor, "test.every_field")
    response = await editor.post(
        f"/nodes/{node}/config",
        {"node_label": "Check", "cfg.subject": "Hi", "cfg.hours": "soon", "cfg.rule": "{oops"},
    )
    assert response.status_code == 200, response.text
    html = response.text
    assert "Saved, but this step still has problems." in html
    assert "Use at least 3 characters." in html
    assert "Use a whole number." in html
    assert "This is not valid JSON (line 1, column 2)." in html
    assert 'aria-invalid="true"' in html
    config = (await editor.flow()).draft_graph["nodes"][0]["config"]
    # What the marketer typed is kept in the draft, so nothing they wrote is lost.
    assert config["subject"] == "Hi" and config["hours"] == "soon" and config["rule"] == "{oops"


async def test_valid_config_is_normalised_and_clears_the_mark(editor: Editor) -> None:
    node = await _add(editor, "test.every_field")
    form: dict[str, Any] = {
        "node_label": "Is it urgent?",
        "cfg.subject": "Welcome aboard",
        "cfg.hours": "12",
        "cfg.share": "0.25",
        "cfg.mode": "slow",
        "cfg.channel": "sms",
        "cfg.urgent": "on",
        "cfg.tags": "vip, new ,",
        "cfg.rule": '{"field": "plan", "op": "eq", "value": "pro"}',
        "cfg.body": "Line one\nLine two",
        "cfg.owner": "",
    }
    response = await editor.post(f"/nodes/{node}/config", form)
    assert response.status_code == 200
    saved = (await editor.flow()).draft_graph["nodes"][0]
    assert saved["label"] == "Is it urgent?"
    assert saved["config"] == {
        "subject": "Welcome aboard",
        "hours": 12,
        "share": 0.25,
        "mode": "slow",
        "channel": "sms",
        "urgent": True,
        "tags": ["vip", "new"],
        "rule": {"field": "plan", "op": "eq", "value": "pro"},
        "body": "Line one\nLine two",
        "owner": None,
        "delay": {"amount": 2, "unit": "days"},
    }
    assert "Saved." in response.text
    # The node's only remaining problem is structural (no trigger yet), not its config.
    assert "Input should" not in response.text


async def test_node_panel_shows_current_values(editor: Editor) -> None:
    node = await _add(editor, "test.every_field")
    await editor.post(f"/nodes/{node}/config", {"cfg.subject": "Hello there", "cfg.mode": "slow"})
    html = (await editor.get(f"/nodes/{node}")).text
    assert 'value="Hello there"' in html
    assert '<option value="slow" selected>' in html
    assert (await editor.get("/nodes/gone")).status_code == 200  # an empty panel, not an error


async def test_undo_and_redo_restore_drafts_as_new_revisions(editor: Editor) -> None:
    node = await _add(editor, "test.email")
    await editor.post(f"/nodes/{node}/move", {"x": 500, "y": 500})
    response = await editor.post("/undo", {})
    assert response.status_code == 200
    flow = await editor.flow()
    assert flow.draft_revision == 3
    assert flow.draft_graph["nodes"][0]["position"] == {"x": 100, "y": 80}
    await editor.post("/undo", {})
    assert (await editor.flow()).draft_graph["nodes"] == []
    nothing = await editor.post("/undo", {})
    assert nothing.status_code == 422
    assert "There is nothing to undo." in nothing.text
    await editor.post("/redo", {})
    await editor.post("/redo", {})
    flow = await editor.flow()
    assert flow.draft_graph["nodes"][0]["position"] == {"x": 500, "y": 500}
    assert (await editor.post("/redo", {})).status_code == 422


async def test_undo_from_a_stale_tab_is_a_conflict(editor: Editor) -> None:
    await _add(editor, "test.email")
    response = await editor.post("/undo", {}, revision=0)
    assert response.status_code == 409
    assert len((await editor.flow()).draft_graph["nodes"]) == 1


async def test_a_new_edit_clears_redo(editor: Editor) -> None:
    await _add(editor, "test.email")
    await editor.post("/undo", {})
    await _add(editor, "test.notify")
    assert (await editor.post("/redo", {})).status_code == 422


async def test_viewer_sees_a_read_only_canvas_and_cannot_edit(
    signed_in: SignedIn, editor: Editor
) -> None:
    trigger, _email = await _two_connected(editor)
    viewer = await signed_in(Role.viewer)
    register_test_types(viewer)
    page = (await viewer.get(editor.base)).text
    assert 'data-readonly="true"' in page
    assert "palette-item" not in page and 'data-action="publish"' not in page
    assert f'data-node-id="{trigger}"' in page
    panel = (await viewer.get(f"{editor.base}/nodes/{trigger}")).text
    assert '<fieldset class="plain" disabled>' in panel
    response = await editor.post(f"/nodes/{trigger}/move", {"x": 1, "y": 1})
    assert response.status_code == 403
    assert (await editor.flow()).draft_graph["nodes"][0]["position"] == {"x": 0, "y": 0}


async def test_missing_flow_is_a_404(editor: Editor) -> None:
    assert (await editor.client.get("/flows/999999/edit")).status_code == 404


async def test_a_step_of_an_uninstalled_type_keeps_its_settings(editor: Editor) -> None:
    graph = {"nodes": [{"id": "old", "type": "gone.plugin", "config": {"keep": 1}}], "edges": []}
    await editor.post("/import", {"graph": json.dumps(graph)})
    page = (await editor.get()).text
    assert "unknown node type &#39;gone.plugin&#39;" in page
    response = await editor.post("/nodes/old/config", {"node_label": "x"})
    assert response.status_code == 422
    assert "is not installed" in response.text
    assert (await editor.flow()).draft_graph["nodes"][0]["config"] == {"keep": 1}


async def test_the_panel_lists_where_each_output_leads(editor: Editor) -> None:
    trigger, email = await _two_connected(editor)
    await _add(editor, "test.wait_event", 600, 0)
    html = (await editor.get(f"/nodes/{trigger}")).text
    assert f'data-source="{trigger}" data-port="next"' in html
    assert f'<option value="{email}" selected>' in html
    assert f'<option value="{trigger}"' not in html  # nothing leads into a trigger
    wait_panel = (await editor.get("/nodes/wait_event")).text
    assert 'data-port="event"' in wait_panel and 'data-port="timeout"' in wait_panel


async def test_the_revision_check_reads_the_row_as_it_is_now(editor: Editor) -> None:
    """A locked read refreshes the flow, so a save committed meanwhile is never missed."""
    async with editor.sessions() as db:
        seen = await load_flow(db, editor.flow_id)
        assert seen.draft_revision == 0
        # The read's transaction ends (a task holds one SQLite connection at a time);
        # the object stays in this session, stale once the other save commits.
        await db.commit()
        async with editor.sessions() as other, other.begin():
            await save_draft(other, editor.flow_id, {"nodes": [], "edges": []})
        # save_draft locks the row itself: the stale object in this session is refreshed.
        with pytest.raises(DraftConflict):
            await save_draft(db, editor.flow_id, {"nodes": [], "edges": []}, expected_revision=0)
        assert seen.draft_revision == 1


async def test_renaming_in_place_changes_only_the_label_at_its_revision(editor: Editor) -> None:
    _, email = await _two_connected(editor)
    before = await editor.flow()
    response = await editor.post(f"/nodes/{email}/label", {"label": "  Guiden på väg  "})
    assert response.status_code == 200, response.text
    after = await editor.flow()
    assert after.draft_revision == before.draft_revision + 1
    [node] = [n for n in after.draft_graph["nodes"] if n["id"] == email]
    [old] = [n for n in before.draft_graph["nodes"] if n["id"] == email]
    assert node == old | {"label": "Guiden på väg"}
    assert after.draft_graph["edges"] == before.draft_graph["edges"]
    assert "Guiden på väg" in response.text
    # A tab still on the old revision cannot rename over it.
    stale = await editor.post(
        f"/nodes/{email}/label", {"label": "Old tab"}, revision=before.draft_revision
    )
    assert stale.status_code == 409
    too_long = await editor.post(f"/nodes/{email}/label", {"label": "x" * 121})
    assert too_long.status_code == 422
    assert "Keep the label under 120 characters." in too_long.text
    gone = await editor.post("/nodes/ghost/label", {"label": "Anyone"})
    assert gone.status_code == 422
    [node] = [n for n in (await editor.flow()).draft_graph["nodes"] if n["id"] == email]
    assert node["label"] == "Guiden på väg"
