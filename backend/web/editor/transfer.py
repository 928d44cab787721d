"""Whole graphs: export and import as JSON, restore a published version, compare versions."""

from __future__ import annotations

import copy
import json
from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Template
from sqlalchemy import select

from backend.audit import DRAFT_EDIT, unaudited
from backend.auth.guards import role
from backend.deps import Actor, Db
from backend.i18n import _
from backend.models import Flow, FlowVersion, Role
from backend.validation import MAX_JSON_DEPTH, json_depth_within
from backend.web.editor.compare import diff_graphs
from backend.web.editor.context import editor_context, fragments, load_flow
from backend.web.editor.edits import BASE, CANVAS_BLOCKS, refused, revision_of, save_edit
from backend.web.editor.ops import EditRefused, replace_graph
from backend.web.posted import read_posted

# A flow of the maximum size with long configs stays well under this.
IMPORT_MAX_BYTES = 5_000_000


@get(BASE + "/export", opt=role(Role.viewer))
async def export_draft(db: Db, flow_id: FromPath[int]) -> Response[bytes]:
    """The draft as a JSON file, ready to import into this or another flow."""
    flow = await load_flow(db, flow_id)
    body = json.dumps(flow.draft_graph, indent=2, ensure_ascii=False).encode()
    return Response(
        content=body,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="flow-{flow.id}.json"'},
    )


@post(BASE + "/import", opt=role(Role.marketer) | unaudited(DRAFT_EDIT))
async def import_draft(
    request: Request[Any, Any, Any], db: Db, actor: Actor, flow_id: FromPath[int]
) -> Template:
    """Replace the draft with an exported graph (undo brings the previous draft back)."""
    form = (await read_posted(request)).values
    text = form.get("graph", "")
    if not text.strip():
        raise refused(_("Choose a flow file (.json) to import."))
    if len(text.encode()) > IMPORT_MAX_BYTES:
        raise refused(_("That file is too large to be a flow."))
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise refused(
            _("That file is not valid JSON (line %(line)d).") % {"line": exc.lineno}
        ) from None
    except RecursionError:
        raw = None
    if raw is None or not json_depth_within(raw):
        raise refused(
            _("That file nests deeper than %(n)d levels: it is not a flow.") % {"n": MAX_JSON_DEPTH}
        )
    try:
        graph = replace_graph(raw)
    except EditRefused as exc:
        raise refused(str(exc)) from None
    flow = await save_edit(request, db, flow_id, revision_of(form), lambda _g: graph)
    context = await editor_context(request, db, actor, flow)
    return fragments(context, "graph", *CANVAS_BLOCKS, "panel")


@post(BASE + "/versions/{number:int}/restore", opt=role(Role.marketer) | unaudited(DRAFT_EDIT))
async def restore_version(
    request: Request[Any, Any, Any],
    db: Db,
    actor: Actor,
    flow_id: FromPath[int],
    number: FromPath[int],
) -> Template:
    """Roll the draft back to a published version; publishing it again makes it live."""
    form = (await read_posted(request)).values
    version = await db.scalar(
        select(FlowVersion).where(FlowVersion.flow_id == flow_id, FlowVersion.number == number)
    )
    if version is None:
        raise NotFoundException(_("This flow has no version %(num)d.") % {"num": number})
    graph = copy.deepcopy(version.graph)
    flow = await save_edit(request, db, flow_id, revision_of(form), lambda _g: graph)
    notice = _("The draft is now version %(num)d; publish to make it live.") % {"num": number}
    context = await editor_context(request, db, actor, flow, notice=notice)
    return fragments(context, "graph", *CANVAS_BLOCKS, "panel")


async def _graph_of(db: Db, flow: Flow, which: str) -> tuple[str, dict[str, Any]]:
    if which == "draft":
        return _("the draft"), flow.draft_graph
    try:
        number = int(which)
    except ValueError:
        raise refused(_("Choose two versions to compare.")) from None
    version = await db.scalar(
        select(FlowVersion).where(FlowVersion.flow_id == flow.id, FlowVersion.number == number)
    )
    if version is None:
        raise NotFoundException(_("This flow has no version %(num)d.") % {"num": number})
    return f"v{number}", version.graph


@get(BASE + "/compare", opt=role(Role.viewer))
async def compare_versions(
    request: Request[Any, Any, Any],
    db: Db,
    actor: Actor,
    flow_id: FromPath[int],
    a: FromQuery[str],
    b: FromQuery[str] = "draft",
) -> Template:
    """The side panel listing what changed from version ``a`` to ``b`` (a number or "draft")."""
    flow = await load_flow(db, flow_id)
    (old_label, old), (new_label, new) = await _graph_of(db, flow, a), await _graph_of(db, flow, b)
    comparison = {"old": old_label, "new": new_label, "diff": diff_graphs(old, new)}
    context = await editor_context(request, db, actor, flow, comparison=comparison)
    return fragments(context, "panel")


ROUTES = [export_draft, import_draft, restore_version, compare_versions]
