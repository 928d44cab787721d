"""The editor page and the read-only fragments it loads (a node's panel, a fresh canvas)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.params import FromPath
from litestar.response import Template

from backend.auth.guards import role
from backend.deps import Actor, Db
from backend.models import Role
from backend.web.editor.context import TEMPLATE, editor_context, fragments, load_flow
from backend.web.editor.edits import BASE
from backend.web.render import render


@get(BASE, opt=role(Role.viewer))
async def editor_page(
    request: Request[Any, Any, Any], db: Db, actor: Actor, flow_id: FromPath[int]
) -> Template:
    """The canvas. Viewers (and everyone, once the flow is archived) see it read-only."""
    flow = await load_flow(db, flow_id)
    return render(request, TEMPLATE, await editor_context(request, db, actor, flow))


@get(BASE + "/canvas", opt=role(Role.viewer))
async def canvas_fragment(
    request: Request[Any, Any, Any], db: Db, actor: Actor, flow_id: FromPath[int]
) -> Template:
    """The current canvas, for the editor to catch up after a refused or conflicting edit."""
    flow = await load_flow(db, flow_id)
    context = await editor_context(request, db, actor, flow)
    return fragments(context, "graph", "status", "problems", "versions")


@get(BASE + "/nodes/{node_id:str}", opt=role(Role.viewer))
async def node_panel(
    request: Request[Any, Any, Any],
    db: Db,
    actor: Actor,
    flow_id: FromPath[int],
    node_id: FromPath[str],
) -> Template:
    """The side panel for one node: its config form (disabled for viewers)."""
    flow = await load_flow(db, flow_id)
    context = await editor_context(request, db, actor, flow, selected=node_id)
    return fragments(context, "panel")


ROUTES = [editor_page, canvas_fragment, node_panel]
