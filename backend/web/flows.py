"""Flows pages: the list, a new draft, and a flow's details and versions.

The canvas editor is issue #5; these pages show what exists and create drafts.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template

from backend.audit import record
from backend.auth.guards import role
from backend.deps import Actor, Db, Now
from backend.flows.results import flow_results
from backend.flows.runs import list_journeys
from backend.flows.summaries import flow_summaries, flow_versions, journey_counts
from backend.i18n import N_, _
from backend.models import Flow, LifecyclePhase, Role
from backend.paging import Page
from backend.web.posted import read_posted
from backend.web.render import redirect, render
from runtime.flows import create_flow

PHASES = {
    LifecyclePhase.attract: N_("Attract"),
    LifecyclePhase.onboard: N_("Onboard"),
    LifecyclePhase.engage: N_("Engage"),
    LifecyclePhase.retain: N_("Retain"),
    LifecyclePhase.exit: N_("Exit"),
}
STATUSES = {
    "draft": N_("Draft"),
    "active": N_("Active"),
    "paused": N_("Paused"),
    "archived": N_("Archived"),
}
NAME_MAX = 200


def _labels() -> dict[str, Any]:
    return {
        "phases": {phase.value: label for phase, label in PHASES.items()},
        "statuses": STATUSES,
    }


@get("/flows", opt=role(Role.viewer))
async def flows_page(request: Request[Any, Any, Any], db: Db, actor: Actor) -> Template:
    summaries = await flow_summaries(db)
    return render(
        request,
        "flows/list.html",
        {
            "nav": "flows",
            "summaries": summaries,
            "can_edit": actor.allows(Role.marketer),
            **_labels(),
        },
    )


@get("/flows/new", opt=role(Role.marketer))
async def new_flow_page(request: Request[Any, Any, Any]) -> Template:
    return render(
        request,
        "flows/new.html",
        {"nav": "flows", "values": {"phase": "attract"}, "errors": {}, **_labels()},
    )


@post("/flows", opt=role(Role.marketer))
async def create_flow_action(
    request: Request[Any, Any, Any], db: Db, actor: Actor
) -> Response[Any] | Template:
    form = await read_posted(request)
    name = form.get("name")
    if not name:
        form.error("name", _("Give the flow a name."))
    elif len(name) > NAME_MAX:
        form.error("name", _("Keep the name under %(num)d characters.") % {"num": NAME_MAX})
    try:
        phase = LifecyclePhase(form.get("phase") or "attract")
    except ValueError:
        form.error("phase", _("Choose one of the lifecycle phases."))
        phase = LifecyclePhase.attract
    if not form.ok:
        return render(
            request,
            "flows/new.html",
            {"nav": "flows", "values": form.values, "errors": form.errors, **_labels()},
            block="form",
            status_code=422,
        )
    flow = await create_flow(
        db, name, phase=phase.value, description=form.get("description"), user_id=actor.id
    )
    record(db, actor, "flow.created", flow, {"name": flow.name, "phase": flow.phase})
    return redirect(request, f"/flows/{flow.id}/edit")


@get("/flows/{flow_id:int}", opt=role(Role.viewer))
async def flow_page(
    request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now, flow_id: FromPath[int]
) -> Template:
    flow = await db.get(Flow, flow_id)
    if flow is None:
        raise NotFoundException(_("There is no flow with this number."))
    counts = (await journey_counts(db, [flow.id])).get(flow.id)
    recent, _total = await list_journeys(db, None, Page.of(1, 10), flow_id=flow.id)
    results = await flow_results(db, flow.id, flow.published_version_id, now=clock.now())
    return render(
        request,
        "flows/detail.html",
        {
            "nav": "flows",
            "flow": flow,
            "counts": counts,
            "versions": await flow_versions(db, flow.id),
            "recent": recent,
            "results": results,
            "node_count": len(flow.draft_graph.get("nodes", [])),
            "can_edit": actor.allows(Role.marketer),
            **_labels(),
        },
    )


ROUTES = [flows_page, new_flow_page, create_flow_action, flow_page]
