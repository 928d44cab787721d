"""Edits to several steps at once: move or delete a selection, paste copied steps."""

from __future__ import annotations

import json
from typing import Any

from litestar import Request, post
from litestar.params import FromPath
from litestar.response import Template

from backend.audit import DRAFT_EDIT, unaudited
from backend.auth.guards import role
from backend.deps import Actor, Db
from backend.i18n import _
from backend.models import Role
from backend.web.editor.context import editor_context, fragments, load_flow
from backend.web.editor.edits import (
    BASE,
    CANVAS_BLOCKS,
    after_change,
    moved_response,
    refused,
    revision_of,
    save_edit,
)
from backend.web.editor.ops import delete_nodes, move_nodes, paste
from backend.web.posted import read_posted

# Same flow: the copies land this far down and right of the originals.
PASTE_OFFSET = 40.0


def _json(form: dict[str, str], name: str) -> Any:
    try:
        return json.loads(form.get(name, ""))
    except json.JSONDecodeError:
        raise refused(_("The selection was not sent correctly. Reload the page.")) from None


def _ids(form: dict[str, str]) -> list[str]:
    ids = _json(form, "ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise refused(_("Select at least one step first."))
    return ids


@post(BASE + "/selection/move", opt=role(Role.marketer) | unaudited(DRAFT_EDIT))
async def move_selection(
    request: Request[Any, Any, Any], db: Db, actor: Actor, flow_id: FromPath[int]
) -> Template:
    """``positions``: a JSON object of node id -> {"x", "y"}."""
    form = (await read_posted(request)).values
    raw = _json(form, "positions")
    try:
        positions = {
            str(node_id): (float(at["x"]), float(at["y"])) for node_id, at in dict(raw).items()
        }
    except (TypeError, ValueError, KeyError):
        raise refused(_("The selection was not sent correctly. Reload the page.")) from None
    flow = await save_edit(
        request, db, flow_id, revision_of(form), lambda g: move_nodes(g, positions)
    )
    context = await editor_context(request, db, actor, flow, moved=set(positions))
    return moved_response(context)


@post(BASE + "/selection/delete", opt=role(Role.marketer) | unaudited(DRAFT_EDIT))
async def delete_selection(
    request: Request[Any, Any, Any], db: Db, actor: Actor, flow_id: FromPath[int]
) -> Template:
    form = (await read_posted(request)).values
    ids = set(_ids(form))
    flow = await save_edit(request, db, flow_id, revision_of(form), lambda g: delete_nodes(g, ids))
    return await after_change(request, db, actor, flow, form, closes_panel=True)


@post(BASE + "/paste", opt=role(Role.marketer) | unaudited(DRAFT_EDIT))
async def paste_selection(
    request: Request[Any, Any, Any], db: Db, actor: Actor, flow_id: FromPath[int]
) -> Template:
    """Paste steps copied from ``source`` (a flow id: this flow or another) at ``x``, ``y``.

    From another flow the copies' top-left corner lands at ``x``, ``y`` (the
    middle of the marketer's view); within one flow they sit just beside the
    originals.
    """
    form = (await read_posted(request)).values
    ids = _ids(form)
    try:
        source_id = int(form.get("source", ""))
        x, y = float(form.get("x", "0")), float(form.get("y", "0"))
    except ValueError:
        raise refused(_("The copied steps were not sent correctly.")) from None
    if source_id == flow_id:
        # Copy from the draft as save_edit reads it (locked), not from an earlier read.
        def edit(graph: dict[str, Any]) -> dict[str, Any]:
            return paste(graph, graph, ids, (PASTE_OFFSET, PASTE_OFFSET))[0]

    else:
        source_graph = (await load_flow(db, source_id)).draft_graph
        picked = [n for n in source_graph.get("nodes", []) if n.get("id") in set(ids)]
        left = min((float((n.get("position") or {}).get("x", 0)) for n in picked), default=x)
        top = min((float((n.get("position") or {}).get("y", 0)) for n in picked), default=y)
        offset = (x - left, y - top)

        def edit(graph: dict[str, Any]) -> dict[str, Any]:
            return paste(graph, source_graph, ids, offset)[0]

    flow = await save_edit(request, db, flow_id, revision_of(form), edit)
    return fragments(await editor_context(request, db, actor, flow), "graph", *CANVAS_BLOCKS)


ROUTES = [move_selection, delete_selection, paste_selection]
