"""Flows pages: the list, a new draft, and a flow's details and versions.

The canvas editor is issue #5; these pages show what exists and create drafts.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.params import FromPath
from litestar.response import Template

from backend.audit import audited, record
from backend.auth.guards import role
from backend.deps import Actor, Db, Now
from backend.flows.process import (
    ProcessChoiceError,
    chosen_process,
    group_options,
    parse_process_id,
    process_options,
    set_flow_process,
)
from backend.flows.results import ResultsFilter, ResultsFilterError, flow_results
from backend.flows.routing import (
    assignable_users,
    chosen_members,
    chosen_owner,
    members_of,
    set_members,
)
from backend.flows.runs import list_journeys
from backend.flows.summaries import NO_PROCESS, flow_summaries, flow_versions, journey_counts
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


def _list_filter(request: Request[Any, Any, Any]) -> tuple[str | None, int | None]:
    """The list's ``phase`` and ``process`` filters; a value that means nothing is ignored."""
    phase = request.query_params.get("phase") or None
    if phase not in {p.value for p in PHASES}:
        phase = None
    raw = request.query_params.get("process") or ""
    process_id = NO_PROCESS if raw == "none" else None
    try:
        process_id = parse_process_id(raw) if raw != "none" else process_id
    except ProcessChoiceError:
        process_id = None
    return phase, process_id


@get("/flows", opt=role(Role.viewer))
async def flows_page(request: Request[Any, Any, Any], db: Db, actor: Actor) -> Template:
    phase, process_id = _list_filter(request)
    summaries = await flow_summaries(db, phase=phase, process_id=process_id)
    options = await process_options(db)
    return render(
        request,
        "flows/list.html",
        {
            "nav": "flows",
            "summaries": summaries,
            "filtered": phase is not None or process_id is not None,
            "filter": {
                "phase": phase or "",
                "process": "none" if process_id == NO_PROCESS else str(process_id or ""),
            },
            "processes": options,
            "process_groups": group_options(options),
            "can_edit": actor.allows(Role.marketer),
            **_labels(),
        },
    )


async def _new_context(db: Db, values: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    return {
        "nav": "flows",
        "values": values,
        "errors": errors,
        "process_groups": group_options(await process_options(db)),
        **_labels(),
    }


@get("/flows/new", opt=role(Role.marketer))
async def new_flow_page(request: Request[Any, Any, Any], db: Db) -> Template:
    return render(request, "flows/new.html", await _new_context(db, {"phase": "attract"}, {}))


@post("/flows", opt=role(Role.marketer) | audited("flow.created"))
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
    try:
        process_id = parse_process_id(form.get("process_id"))
        await chosen_process(db, process_id)
    except ProcessChoiceError as exc:
        form.error("process_id", exc.message)
        process_id = None
    if not form.ok:
        return render(
            request,
            "flows/new.html",
            await _new_context(db, form.values, form.errors),
            block="form",
            status_code=422,
        )
    flow = await create_flow(
        db, name, phase=phase.value, description=form.get("description"), user_id=actor.id
    )
    # The process's phase wins over the phase picked beside it (docs/lifecycle.md).
    await set_flow_process(db, flow, process_id)
    record(
        db,
        actor,
        "flow.created",
        flow,
        {"name": flow.name, "phase": flow.phase, "process": flow.process_id},
    )
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
    try:
        wanted = ResultsFilter.parse(dict(request.query_params), today=clock.now().date())
        results = await flow_results(db, flow.id, flow.published_version_id, wanted)
    except ResultsFilterError as exc:
        raise ValidationException(str(exc)) from exc
    options = await process_options(db)
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
            "process": options.get(flow.process_id) if flow.process_id else None,
            "process_groups": group_options(options, keep=flow.process_id),
            "routing_users": await assignable_users(db),
            "routing_members": await members_of(db, flow_id=flow.id),
            **_labels(),
        },
    )


@post("/flows/{flow_id:int}/process", opt=role(Role.marketer) | audited("flow.process_changed"))
async def set_process_action(
    request: Request[Any, Any, Any], db: Db, actor: Actor, flow_id: FromPath[int]
) -> Response[Any]:
    """Put the flow in a lifecycle process; the flow's phase follows the process's."""
    flow = await db.get(Flow, flow_id)
    if flow is None:
        raise NotFoundException(_("There is no flow with this number."))
    form = await read_posted(request)
    try:
        changed = await set_flow_process(db, flow, parse_process_id(form.get("process_id")))
    except ProcessChoiceError as exc:
        raise HTTPException(status_code=exc.status, detail=exc.message) from exc
    if changed is not None:
        record(db, actor, "flow.process_changed", flow, changed)
    return redirect(request, f"/flows/{flow.id}")


@post("/flows/{flow_id:int}/routing", opt=role(Role.marketer) | audited("flow.routing_changed"))
async def set_routing_action(
    request: Request[Any, Any, Any], db: Db, actor: Actor, flow_id: FromPath[int]
) -> Response[Any]:
    """Choose who takes the flow's tasks for contacts without an owner."""
    flow = await db.get(Flow, flow_id, with_for_update=True)
    if flow is None:
        raise NotFoundException(_("There is no flow with this number."))
    form = await read_posted(request)
    owner = await chosen_owner(db, form.get("owner_id"))
    if form.get("owner_id") and owner is None:
        raise HTTPException(status_code=400, detail=_("Choose an active user who can take tasks."))
    users = await assignable_users(db)
    members = chosen_members(form, users)
    changed = await set_members(db, members, flow_id=flow.id)
    if changed or owner != flow.owner_id:
        flow.owner_id = owner
        record(db, actor, "flow.routing_changed", flow, {"owner": owner, "round_robin": members})
    return redirect(request, f"/flows/{flow.id}")


ROUTES = [
    flows_page,
    new_flow_page,
    create_flow_action,
    flow_page,
    set_process_action,
    set_routing_action,
]
