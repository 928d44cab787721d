"""Several steps at once: moving and deleting a selection, pasting copies (also across flows)."""

from __future__ import annotations

import json

from backend.models import Role
from runtime.flows import create_flow
from tests.backend.editor.conftest import Editor
from tests.backend.web.conftest import SignedIn
from tests.runtime.nodes import canonical_graph


async def _load_canonical(editor: Editor) -> None:
    response = await editor.post("/import", {"graph": json.dumps(canonical_graph())})
    assert response.status_code == 200, response.text


async def test_a_selection_moves_in_one_edit(editor: Editor) -> None:
    await _load_canonical(editor)
    positions = {"form": {"x": 10, "y": 20}, "confirm": {"x": 300, "y": 20}}
    response = await editor.post("/selection/move", {"positions": json.dumps(positions)})
    assert response.status_code == 200
    # Only the moved steps (and their connections) come back, not the canvas.
    assert 'id="graph"' not in response.text and 'id="node-later"' not in response.text
    assert 'id="node-form"' in response.text and 'id="node-confirm"' in response.text
    flow = await editor.flow()
    assert flow.draft_revision == 2
    placed = {n["id"]: n["position"] for n in flow.draft_graph["nodes"]}
    assert placed["form"] == {"x": 10, "y": 20} and placed["confirm"] == {"x": 300, "y": 20}
    broken = await editor.post("/selection/move", {"positions": '{"form": {"x": "left"}}'})
    assert broken.status_code == 422


async def test_a_selection_is_deleted_with_its_connections(editor: Editor) -> None:
    await _load_canonical(editor)
    response = await editor.post("/selection/delete", {"ids": json.dumps(["opened", "later"])})
    assert response.status_code == 200
    graph = (await editor.flow()).draft_graph
    assert {n["id"] for n in graph["nodes"]} == {"form", "confirm", "reminder", "notify"}
    assert graph["edges"] == [{"source": "form", "port": "next", "target": "confirm"}]
    nothing = await editor.post("/selection/delete", {"ids": "[]"})
    assert nothing.status_code == 422


async def test_paste_within_a_flow_copies_beside_the_originals(editor: Editor) -> None:
    await _load_canonical(editor)
    ids = json.dumps(["confirm", "opened"])
    response = await editor.post(
        "/paste", {"source": editor.flow_id, "ids": ids, "x": 999, "y": 999}
    )
    assert response.status_code == 200, response.text
    graph = (await editor.flow()).draft_graph
    copies = {n["id"]: n for n in graph["nodes"]}
    assert copies["email"]["config"] == {"subject": "Your download"}
    assert copies["email"]["position"] == {"x": 40, "y": 40}
    assert copies["wait_event"]["type"] == "test.wait_event"
    # The connection between the two copied steps is copied; the ones leaving them are not.
    assert {"source": "email", "port": "next", "target": "wait_event"} in graph["edges"]
    assert len(graph["edges"]) == 6


async def test_paste_into_another_flow_lands_at_the_view(editor: Editor) -> None:
    await _load_canonical(editor)
    async with editor.sessions() as db, db.begin():
        other = await create_flow(db, "Second")
    target = Editor(editor.client, editor.sessions, other.id)
    ids = json.dumps(["form", "confirm"])
    response = await target.post(
        "/paste", {"source": editor.flow_id, "ids": ids, "x": 500, "y": 300}
    )
    assert response.status_code == 200, response.text
    graph = (await target.flow()).draft_graph
    assert [(n["id"], n["position"]) for n in graph["nodes"]] == [
        ("trigger", {"x": 500, "y": 300}),
        ("email", {"x": 500, "y": 300}),
    ]
    assert graph["edges"] == [{"source": "trigger", "port": "next", "target": "email"}]
    gone = await target.post(
        "/paste", {"source": editor.flow_id, "ids": '["nope"]', "x": 0, "y": 0}
    )
    assert gone.status_code == 422
    assert "no longer there" in gone.text


async def test_viewers_cannot_change_a_selection(editor: Editor, signed_in: SignedIn) -> None:
    await _load_canonical(editor)
    await signed_in(Role.viewer)
    response = await editor.post("/selection/delete", {"ids": json.dumps(["form"])})
    assert response.status_code == 403
    assert len((await editor.flow()).draft_graph["nodes"]) == 6
