"""The editor's side panel asks here which touchpoints a node serves, and links or unlinks one.

A fragment of its own, loaded by the panel with htmx, so the editor knows
nothing of the lifecycle plan but this one address.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath
from litestar.response import Template
from sqlalchemy import select

from backend.audit import audited, record
from backend.auth.guards import role
from backend.deps import Actor, Db
from backend.i18n import _
from backend.lifecycle.common import labels
from backend.models import Flow, Role, Touchpoint, TouchpointLink, TouchpointStatus
from backend.web.posted import read_posted
from backend.web.render import render

PATH = "/lifecycle/flows/{flow_id:int}/nodes/{node_id:str}/touchpoints"


async def _flow_node(db: Db, flow_id: int, node_id: str) -> Flow:
    flow = await db.get(Flow, flow_id)
    if flow is None:
        raise NotFoundException(_("There is no flow with this number."))
    if node_id not in {node.get("id") for node in flow.draft_graph.get("nodes", [])}:
        raise NotFoundException(_("This flow has no such step."))
    return flow


async def _fragment(
    request: Request[Any, Any, Any], db: Db, actor: Actor, flow: Flow, node_id: str
) -> Template:
    linked = list(
        await db.execute(
            select(TouchpointLink.id, Touchpoint)
            .join(Touchpoint, Touchpoint.id == TouchpointLink.touchpoint_id)
            .where(TouchpointLink.flow_id == flow.id, TouchpointLink.node_id == node_id)
            .order_by(Touchpoint.title)
        )
    )
    taken = {card.id for _link, card in linked}
    choices = [
        card
        for card in await db.scalars(
            select(Touchpoint)
            .where(Touchpoint.status != TouchpointStatus.retired.value)
            .order_by(Touchpoint.title)
        )
        if card.id not in taken
    ]
    return render(
        request,
        "lifecycle/node_touchpoints.html",
        {
            "flow": flow,
            "node_id": node_id,
            "linked": linked,
            "choices": choices,
            "can_edit": actor.allows(Role.marketer),
            **labels(),
        },
    )


@get(PATH, opt=role(Role.viewer))
async def node_touchpoints(
    request: Request[Any, Any, Any],
    db: Db,
    actor: Actor,
    flow_id: FromPath[int],
    node_id: FromPath[str],
) -> Template:
    """Which touchpoints this step carries out."""
    flow = await _flow_node(db, flow_id, node_id)
    return await _fragment(request, db, actor, flow, node_id)


@post(
    PATH,
    opt=role(Role.marketer) | audited("touchpoint.linked", "touchpoint.unlinked"),
    status_code=200,
)
async def change_node_touchpoints(
    request: Request[Any, Any, Any],
    db: Db,
    actor: Actor,
    flow_id: FromPath[int],
    node_id: FromPath[str],
) -> Template:
    """``link`` a touchpoint to this step, or ``unlink`` one."""
    flow = await _flow_node(db, flow_id, node_id)
    form = await read_posted(request)
    raw = form.get("touchpoint_id")
    card = await db.get(Touchpoint, int(raw)) if raw.isdigit() else None
    if card is None:
        raise HTTPException(status_code=422, detail=_("Choose a touchpoint."))
    found = await db.scalar(
        select(TouchpointLink).where(
            TouchpointLink.touchpoint_id == card.id,
            TouchpointLink.flow_id == flow.id,
            TouchpointLink.node_id == node_id,
        )
    )
    if form.get("action") == "unlink":
        if found is not None:
            await db.delete(found)
            record(db, actor, "touchpoint.unlinked", card, {"flow": flow.id, "node": node_id})
    elif found is None:
        db.add(TouchpointLink(touchpoint_id=card.id, flow_id=flow.id, node_id=node_id))
        record(db, actor, "touchpoint.linked", card, {"flow": flow.id, "node": node_id})
    await db.flush()
    return await _fragment(request, db, actor, flow, node_id)


ROUTES = [node_touchpoints, change_node_touchpoints]
