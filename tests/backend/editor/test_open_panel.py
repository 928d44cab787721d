"""Deleting, undoing and redoing keep the open step's panel and redraw its problems."""

from __future__ import annotations

import json

from tests.backend.editor.conftest import Editor

UNREACHABLE = "no trigger leads to this node"


async def _chain(editor: Editor) -> None:
    node = {"type": "test.email", "config": {"subject": "Hi"}}
    graph = {
        "nodes": [
            {"id": "start", "type": "test.trigger", "config": {"event_type": "signup"}},
            {"id": "a", **node},
            {"id": "b", **node},
        ],
        "edges": [
            {"source": "start", "port": "next", "target": "a"},
            {"source": "a", "port": "next", "target": "b"},
        ],
    }
    await editor.post("/import", {"graph": json.dumps(graph)})


def _panel_problems(html: str) -> str:
    start = html.index('id="panel-problems"')
    return html[start : html.index("</div>", start)]


async def test_deleting_the_step_before_the_open_one_redraws_its_problems(editor: Editor) -> None:
    await _chain(editor)
    response = await editor.post("/nodes/a/delete", {"panel": "b"})
    assert response.status_code == 200, response.text
    assert UNREACHABLE in _panel_problems(response.text)
    assert "panel-empty" not in response.text  # the panel of "b" stays open

    undone = await editor.post("/undo", {"panel": "b"})
    assert 'id="panel" class="panel" data-node-id="b"' in undone.text
    assert UNREACHABLE not in _panel_problems(undone.text)
    redone = await editor.post("/redo", {"panel": "b"})
    assert UNREACHABLE in _panel_problems(redone.text)


async def test_deleting_the_open_step_closes_its_panel(editor: Editor) -> None:
    await _chain(editor)
    response = await editor.post("/selection/delete", {"ids": '["b"]', "panel": "b"})
    assert response.status_code == 200, response.text
    assert 'id="panel" class="panel" data-node-id=""' in response.text
