"""The board pages: a process's (or a phase's) timeline of cards, a card, and its links.

Marketers edit, viewers read; every change is audited. Saving and moving a
card carry the revision it was loaded at: a stale one answers 409 with a
sentence saying what happened, never a silent overwrite.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath
from litestar.response import Template
from sqlalchemy import select

from backend.audit import audited, record
from backend.auth.guards import role
from backend.deps import Actor, Db, Now
from backend.i18n import _
from backend.lifecycle.board import Filters, load_board
from backend.lifecycle.common import labels, plan_error, wants_json
from backend.lifecycle.followup import follow_up
from backend.lifecycle.plan import PlanError, ensure_workspace, get_phase, get_process, load_plan
from backend.lifecycle.touchpoints import (
    Conflict,
    audience_label,
    create_card,
    get_card,
    horizon_months,
    horizon_of,
    move_card,
    read_card,
    update_card,
)
from backend.models import (
    Flow,
    FlowStatus,
    LifecyclePhase,
    Role,
    Touchpoint,
    TouchpointCategory,
    TouchpointLink,
)
from backend.web.render import redirect, render
from runtime.flows import create_flow

# How customers usually enter a flow of each phase: a form while they are being
# attracted, their own actions once on board, a segment later on.
TRIGGER_FAMILY = {
    LifecyclePhase.attract.value: "trigger.form_submitted",
    LifecyclePhase.onboard.value: "trigger.event",
    LifecyclePhase.engage.value: "trigger.audience_entered",
    LifecyclePhase.retain.value: "trigger.audience_entered",
    LifecyclePhase.exit.value: "trigger.event",
}


async def _board_page(
    request: Request[Any, Any, Any],
    db: Db,
    actor: Actor,
    clock: Now,
    *,
    phase_id: int | None,
    process_id: int | None,
    workshop: bool = False,
) -> Template:
    try:
        board = await load_board(
            db,
            phase_id=phase_id,
            process_ids=[process_id] if process_id is not None else [],
            filters=(filters := Filters.read(dict(request.query_params))),
            now=clock.now(),
        )
    except PlanError as exc:
        raise plan_error(exc) from exc
    base = f"/lifecycle/phases/{phase_id}" if phase_id else f"/lifecycle/processes/{process_id}"
    return render(
        request,
        "lifecycle/board.html",
        {
            "nav": "lifecycle",
            "board": board,
            "filters": filters,
            "base": base,
            "process_id": process_id,
            "workshop": workshop,
            "can_edit": actor.allows(Role.marketer),
            "values": {"category": "customer", "priority": "2", "status": "idea"},
            "errors": {},
            **labels(),
        },
        block="board",
    )


@get("/lifecycle/processes/{process_id:int}", opt=role(Role.viewer))
async def process_board(
    request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now, process_id: FromPath[int]
) -> Template:
    return await _board_page(request, db, actor, clock, phase_id=None, process_id=process_id)


@get("/lifecycle/processes/{process_id:int}/workshop", opt=role(Role.viewer))
async def workshop_board(
    request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now, process_id: FromPath[int]
) -> Template:
    """Full screen, refreshed every few seconds so everyone in the room sees each change."""
    return await _board_page(
        request, db, actor, clock, phase_id=None, process_id=process_id, workshop=True
    )


@get("/lifecycle/phases/{phase_id:int}", opt=role(Role.viewer))
async def phase_board(
    request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now, phase_id: FromPath[int]
) -> Template:
    return await _board_page(request, db, actor, clock, phase_id=phase_id, process_id=None)


async def _choices(db: Db) -> dict[str, Any]:
    """Processes to move a card to and customer cards a company card can answer."""
    plan = await load_plan(db)
    customers = list(
        await db.scalars(
            select(Touchpoint)
            .where(
                Touchpoint.category == TouchpointCategory.customer.value,
                Touchpoint.status != "retired",
            )
            .order_by(Touchpoint.title)
        )
    )
    flows = list(
        await db.scalars(
            select(Flow).where(Flow.status != FlowStatus.archived.value).order_by(Flow.name)
        )
    )
    return {"plan": plan, "customer_cards": customers, "flows": flows}


@post(
    "/lifecycle/processes/{process_id:int}/touchpoints",
    opt=role(Role.marketer) | audited("touchpoint.created"),
)
async def create_touchpoint(
    request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now, process_id: FromPath[int]
) -> Response[Any] | Template:
    data = await request.form()
    card = read_card(dict(data.items()), data.getall("channels") if "channels" in data else [])
    if not card.ok:
        try:
            board = await load_board(
                db, process_ids=[process_id], filters=Filters(), now=clock.now()
            )
        except PlanError as exc:
            raise plan_error(exc) from exc
        return render(
            request,
            "lifecycle/board.html",
            {
                "nav": "lifecycle",
                "board": board,
                "filters": Filters(),
                "base": f"/lifecycle/processes/{process_id}",
                "process_id": process_id,
                "workshop": False,
                "can_edit": True,
                "values": {key: str(value) for key, value in data.items()},
                "errors": card.errors,
                **labels(),
            },
            status_code=422,
        )
    try:
        made = await create_card(db, process_id, card.values, now=clock.now())
    except PlanError as exc:
        raise plan_error(exc) from exc
    record(db, actor, "touchpoint.created", made, {"title": made.title, "process": process_id})
    return redirect(request, f"/lifecycle/processes/{process_id}#card-{made.id}")


async def _card_context(db: Db, card: Touchpoint, clock: Now) -> dict[str, Any]:
    settings = await ensure_workspace(db)
    follow = (await follow_up(db, [card], clock.now()))[card.id]
    process = await get_process(db, card.process_id)
    return {
        "nav": "lifecycle",
        "card": card,
        "process": process,
        "phase": await get_phase(db, process.phase_id),
        "follow": follow,
        "horizon": horizon_of(card, horizon_months(settings), clock.now()),
        **(await _choices(db)),
        **labels(),
    }


def _values_of(card: Touchpoint) -> dict[str, Any]:
    return {
        "title": card.title,
        "description": card.description,
        "category": card.category,
        "status": card.status,
        "priority": str(card.priority),
        "channels": card.channels,
        "decision": card.decision,
        "owner": card.owner,
        "audience": audience_label(card),
        "answers_id": str(card.answers_id or ""),
        "revision": str(card.revision),
    }


@get("/lifecycle/touchpoints/{touchpoint_id:int}", opt=role(Role.viewer))
async def touchpoint_page(
    request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now, touchpoint_id: FromPath[int]
) -> Template:
    try:
        card = await get_card(db, touchpoint_id)
    except PlanError as exc:
        raise plan_error(exc) from exc
    return render(
        request,
        "lifecycle/card.html",
        {
            **(await _card_context(db, card, clock)),
            "values": _values_of(card),
            "errors": {},
            "conflict": None,
            "can_edit": actor.allows(Role.marketer),
        },
    )


def _revision(raw: Any) -> int:
    text = str(raw or "").strip()
    if not text.isdigit():
        raise HTTPException(
            status_code=400,
            detail=_("The form did not say which revision of the card it was made on; reload it."),
        )
    return int(text)


async def _answers(db: Db, raw: str, card_id: int) -> tuple[int | None, str | None]:
    if not raw:
        return None, None
    target = await db.get(Touchpoint, int(raw)) if raw.isdigit() else None
    if target is None or target.category != TouchpointCategory.customer.value:
        return None, _("Choose one of the customer-interest touchpoints.")
    if target.id == card_id:
        return None, _("A touchpoint cannot answer itself.")
    return target.id, None


@post(
    "/lifecycle/touchpoints/{touchpoint_id:int}",
    opt=role(Role.marketer) | audited("touchpoint.updated"),
)
async def save_touchpoint(
    request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now, touchpoint_id: FromPath[int]
) -> Response[Any] | Template:
    data = await request.form()
    seen = _revision(data.get("revision"))
    try:
        current = await get_card(db, touchpoint_id)
    except PlanError as exc:
        raise plan_error(exc) from exc
    card = read_card(dict(data.items()), data.getall("channels") if "channels" in data else [])
    answers, problem = await _answers(db, str(data.get("answers_id") or "").strip(), current.id)
    if problem:
        card.errors["answers_id"] = problem
    if card.values.get("category") == TouchpointCategory.customer.value:
        answers = None
    values_typed = {key: str(value) for key, value in data.items()}
    values_typed["channels"] = data.getall("channels") if "channels" in data else []  # type: ignore[assignment]
    if not card.ok:
        return render(
            request,
            "lifecycle/card.html",
            {
                **(await _card_context(db, current, clock)),
                "values": values_typed,
                "errors": card.errors,
                "conflict": None,
                "can_edit": True,
            },
            status_code=422,
        )
    try:
        saved, changed = await update_card(
            db, current.id, seen, {**card.values, "answers_id": answers}, now=clock.now()
        )
    except Conflict as exc:
        # Keep what this person typed, on the current revision: saving again is a choice.
        values_typed["revision"] = str(exc.touchpoint.revision)
        return render(
            request,
            "lifecycle/card.html",
            {
                **(await _card_context(db, exc.touchpoint, clock)),
                "values": values_typed,
                "errors": {},
                "conflict": exc.message,
                "can_edit": True,
            },
            status_code=409,
        )
    record(db, actor, "touchpoint.updated", saved, {"changed": _jsonable(changed)})
    return redirect(request, f"/lifecycle/processes/{saved.process_id}#card-{saved.id}")


def _jsonable(changed: dict[str, Any]) -> dict[str, Any]:
    return {
        key: [
            value if value is None or isinstance(value, int | str | list | dict) else str(value)
            for value in pair
        ]
        for key, pair in changed.items()
    }


def _int_or_none(raw: Any) -> int | None:
    text = str(raw or "").strip().lstrip("+")
    if text.startswith("-") and text[1:].isdigit():
        return int(text)
    return int(text) if text.isdigit() else None


@post(
    "/lifecycle/touchpoints/{touchpoint_id:int}/move",
    opt=role(Role.marketer) | audited("touchpoint.moved"),
)
async def move_touchpoint(
    request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now, touchpoint_id: FromPath[int]
) -> Response[Any]:
    """Drag and drop (``index``, ``process_id``) or the buttons (``offset`` of -1 or +1)."""
    data = await request.form()
    seen = _revision(data.get("revision"))
    try:
        before = await get_card(db, touchpoint_id)
        from_process = before.process_id
        moved = await move_card(
            db,
            touchpoint_id,
            seen,
            process_id=_int_or_none(data.get("process_id")),
            index=_int_or_none(data.get("index")),
            offset=_int_or_none(data.get("offset")),
            now=clock.now(),
        )
    except Conflict as exc:
        message = exc.message
        # The neighbours were renumbered for the refused move: none of it may commit.
        await db.rollback()
        if wants_json(request):
            return Response({"error": {"message": message}}, status_code=409)
        raise HTTPException(status_code=409, detail=message) from exc
    except PlanError as exc:
        await db.rollback()
        if wants_json(request):
            return Response({"error": {"message": exc.message}}, status_code=exc.status)
        raise plan_error(exc) from exc
    record(
        db,
        actor,
        "touchpoint.moved",
        moved,
        {"from_process": from_process, "to_process": moved.process_id, "position": moved.position},
    )
    if wants_json(request):
        return Response({"id": moved.id, "revision": moved.revision, "position": moved.position})
    return redirect(request, f"/lifecycle/processes/{moved.process_id}#card-{moved.id}")


@post(
    "/lifecycle/touchpoints/{touchpoint_id:int}/links",
    opt=role(Role.marketer) | audited("touchpoint.linked"),
)
async def add_link(
    request: Request[Any, Any, Any], db: Db, actor: Actor, touchpoint_id: FromPath[int]
) -> Response[Any]:
    """Link the card to a flow, or to one node of the flow's draft."""
    data = await request.form()
    try:
        card = await get_card(db, touchpoint_id)
    except PlanError as exc:
        raise plan_error(exc) from exc
    flow_id = _int_or_none(data.get("flow_id"))
    flow = await db.get(Flow, flow_id) if flow_id is not None else None
    if flow is None:
        raise HTTPException(status_code=422, detail=_("Choose a flow to link."))
    node_id = str(data.get("node_id") or "").strip()
    nodes = {node.get("id") for node in flow.draft_graph.get("nodes", [])}
    if node_id and node_id not in nodes:
        raise HTTPException(
            status_code=422,
            detail=_("The flow “%(name)s” has no node %(node)s.")
            % {"name": flow.name, "node": node_id},
        )
    exists = await db.scalar(
        select(TouchpointLink.id).where(
            TouchpointLink.touchpoint_id == card.id,
            TouchpointLink.flow_id == flow.id,
            TouchpointLink.node_id == node_id,
        )
    )
    if exists is None:
        link = TouchpointLink(touchpoint_id=card.id, flow_id=flow.id, node_id=node_id)
        db.add(link)
        await db.flush()
        record(db, actor, "touchpoint.linked", card, {"flow": flow.id, "node": node_id})
    return redirect(request, f"/lifecycle/touchpoints/{card.id}")


@post(
    "/lifecycle/touchpoints/{touchpoint_id:int}/links/{link_id:int}/delete",
    opt=role(Role.marketer) | audited("touchpoint.unlinked"),
)
async def remove_link(
    request: Request[Any, Any, Any],
    db: Db,
    actor: Actor,
    touchpoint_id: FromPath[int],
    link_id: FromPath[int],
) -> Response[Any]:
    link = await db.get(TouchpointLink, link_id)
    if link is None or link.touchpoint_id != touchpoint_id:
        raise HTTPException(status_code=404, detail=_("This link is already gone."))
    await db.delete(link)
    record(
        db,
        actor,
        "touchpoint.unlinked",
        ("lifecycle_touchpoints", touchpoint_id),
        {"flow": link.flow_id, "node": link.node_id},
    )
    return redirect(request, f"/lifecycle/touchpoints/{touchpoint_id}")


@post(
    "/lifecycle/touchpoints/{touchpoint_id:int}/flow",
    opt=role(Role.marketer) | audited("flow.created"),
)
async def flow_from_touchpoint(
    request: Request[Any, Any, Any], db: Db, actor: Actor, touchpoint_id: FromPath[int]
) -> Response[Any]:
    """A draft flow in the card's phase and process, linked back to the card."""
    try:
        card = await get_card(db, touchpoint_id)
        process = await get_process(db, card.process_id)
        phase = await get_phase(db, process.phase_id)
    except PlanError as exc:
        raise plan_error(exc) from exc
    trigger = {
        "id": "trigger",
        "type": TRIGGER_FAMILY.get(phase.flow_phase, "trigger.event"),
        "label": card.title,
        "config": {},
        "position": {"x": 40, "y": 160},
    }
    flow = await create_flow(
        db,
        card.title,
        graph={"nodes": [trigger], "edges": []},
        phase=phase.flow_phase,
        description=card.description,
        user_id=actor.id,
    )
    flow.process_id = process.id
    db.add(TouchpointLink(touchpoint_id=card.id, flow_id=flow.id, node_id=""))
    await db.flush()
    record(
        db,
        actor,
        "flow.created",
        flow,
        {"name": flow.name, "phase": flow.phase, "touchpoint": card.id},
    )
    return redirect(request, f"/flows/{flow.id}/edit")


ROUTES = [
    process_board,
    workshop_board,
    phase_board,
    create_touchpoint,
    touchpoint_page,
    save_touchpoint,
    move_touchpoint,
    add_link,
    remove_link,
    flow_from_touchpoint,
]
