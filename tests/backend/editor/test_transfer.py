"""Whole-graph edits: tidy up, export and import as JSON, restoring a published version."""

from __future__ import annotations

import json

from backend.web.editor.compare import diff_graphs
from backend.web.editor.geometry import NODE_WIDTH
from backend.web.editor.ops import LAYER_GAP, ORIGIN, tidy
from nodes.sdk import NodeRegistry
from tests.backend.editor.conftest import Editor, publish_second_version
from tests.runtime.nodes import TEST_NODE_TYPES, canonical_graph


def _registry() -> NodeRegistry:
    registry = NodeRegistry()
    for node_type in TEST_NODE_TYPES:
        registry.add(node_type)
    return registry


def test_tidy_puts_each_step_one_column_after_its_parent() -> None:
    laid_out = tidy(canonical_graph(), _registry())
    x = {n["id"]: n["position"]["x"] for n in laid_out["nodes"]}
    column = NODE_WIDTH + LAYER_GAP
    assert x["form"] == ORIGIN
    assert x["confirm"] == ORIGIN + column
    assert x["opened"] == ORIGIN + 2 * column
    assert x["reminder"] == x["later"] == ORIGIN + 3 * column
    assert x["notify"] == ORIGIN + 4 * column
    y = {n["id"]: n["position"]["y"] for n in laid_out["nodes"]}
    assert y["reminder"] != y["later"]  # siblings share a column, not a spot


async def test_tidy_is_an_edit_that_undo_reverts(editor: Editor) -> None:
    await editor.post("/import", {"graph": json.dumps(canonical_graph())})
    response = await editor.post("/tidy", {})
    assert response.status_code == 200
    positions = {n["id"]: n["position"] for n in (await editor.flow()).draft_graph["nodes"]}
    assert positions["form"] == {"x": ORIGIN, "y": ORIGIN}
    await editor.post("/undo", {})
    positions = {n["id"]: n["position"] for n in (await editor.flow()).draft_graph["nodes"]}
    assert positions["form"] == {"x": 0, "y": 0}


async def test_export_then_import_round_trips_a_draft(editor: Editor) -> None:
    await editor.post("/import", {"graph": json.dumps(canonical_graph())})
    exported = await editor.client.get(editor.base + "/export")
    assert exported.status_code == 200
    assert "attachment" in exported.headers["content-disposition"]
    graph = exported.json()
    assert {n["id"] for n in graph["nodes"]} == {
        "form",
        "confirm",
        "opened",
        "reminder",
        "later",
        "notify",
    }
    await editor.post("/nodes/form/delete", {})
    response = await editor.post("/import", {"graph": json.dumps(graph)})
    assert response.status_code == 200
    assert (await editor.flow()).draft_graph == graph
    assert "node-invalid" not in response.text


async def test_import_refuses_what_is_not_a_flow(editor: Editor) -> None:
    not_json = await editor.post("/import", {"graph": "{nodes"})
    assert not_json.status_code == 422
    assert "not valid JSON (line 1)" in not_json.text
    wrong_shape = await editor.post("/import", {"graph": json.dumps([1, 2])})
    assert wrong_shape.status_code == 422
    bad_id = {"nodes": [{"id": "no spaces", "type": "test.email"}], "edges": []}
    refused = await editor.post("/import", {"graph": json.dumps(bad_id)})
    assert refused.status_code == 422
    assert "This is not a Touchflow flow (nodes.0.id:" in refused.text
    empty = await editor.post("/import", {"graph": " "})
    assert empty.status_code == 422
    assert (await editor.revision()) == 0


async def test_restoring_a_version_rolls_the_draft_back(editor: Editor) -> None:
    await editor.post("/import", {"graph": json.dumps(canonical_graph())})
    assert (await editor.post("/publish", {})).status_code == 200
    await editor.post("/nodes/notify/delete", {})
    response = await editor.post("/versions/1/restore", {})
    assert response.status_code == 200
    assert "The draft is now version 1; publish to make it live." in response.text
    ids = {n["id"] for n in (await editor.flow()).draft_graph["nodes"]}
    assert "notify" in ids
    missing = await editor.post("/versions/7/restore", {})
    assert missing.status_code == 404


async def test_compare_lists_what_changed_between_versions(editor: Editor) -> None:
    await editor.post("/import", {"graph": json.dumps(canonical_graph())})
    await editor.post("/publish", {})
    await publish_second_version(editor, subject="New subject")
    html = (await editor.get("/compare?a=1&b=2")).text
    assert "Changes from v1 to v2" in html
    assert 'Added step <a href="#node-tag"' in html
    assert "Removed step <code>notify</code>" in html
    assert "Changed step" in html and "confirm</a>: config" in html
    assert "later</a>" not in html  # moved, not changed
    assert "Removed connection <code>later.next → notify</code>" in html
    assert "New connection <code>later.next → tag</code>" in html
    same = (await editor.get("/compare?a=2&b=draft")).text
    assert "No differences" in same
    assert (await editor.get("/compare?a=9")).status_code == 404
    assert (await editor.get("/compare?a=x")).status_code == 422


def test_diff_ignores_positions_and_default_settings() -> None:
    graph = canonical_graph()
    moved = json.loads(json.dumps(graph))
    moved["nodes"][0]["position"] = {"x": 5, "y": 5}
    moved["settings"] = {}
    assert diff_graphs(graph, moved).empty


async def test_import_refuses_json_nested_100000_deep(editor: Editor) -> None:
    """A RecursionError (a 500) before; a clear refusal now, and the draft untouched."""
    refused = await editor.post("/import", {"graph": "[" * 100_000 + "]" * 100_000})
    assert refused.status_code == 422
    assert "nests deeper than 32 levels" in refused.text
    nested = {"nodes": [], "edges": [], "settings": {"a": json.loads("[" * 40 + "]" * 40)}}
    assert (await editor.post("/import", {"graph": json.dumps(nested)})).status_code == 422
    assert (await editor.revision()) == 0
