"""The plan page: phases and processes (add, rename, reorder, retire), templates, horizons."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.response import Template

from backend.audit import audited, record
from backend.auth.guards import role
from backend.deps import Actor, Db
from backend.i18n import _
from backend.lifecycle import plan
from backend.lifecycle.common import labels, plan_error
from backend.lifecycle.touchpoints import horizon_months, read_horizons
from backend.models import Role
from backend.web.posted import read_posted
from backend.web.render import redirect, render


async def _context(db: Db, actor: Actor) -> dict[str, Any]:
    settings = await plan.ensure_workspace(db)
    return {
        "nav": "lifecycle",
        "plan": await plan.load_plan(db, include_retired=True),
        "horizons": horizon_months(settings),
        "can_edit": actor.allows(Role.marketer),
        "errors": {},
        **labels(),
    }


@get("/lifecycle", opt=role(Role.viewer))
async def plan_page(request: Request[Any, Any, Any], db: Db, actor: Actor) -> Template:
    return render(request, "lifecycle/plan.html", await _context(db, actor))


def _id(raw: str) -> int:
    if not raw.isdigit():
        raise HTTPException(status_code=400, detail=_("The form did not say what to change."))
    return int(raw)


@post("/lifecycle/plan", opt=role(Role.marketer) | audited("lifecycle.*"))
async def change_plan(request: Request[Any, Any, Any], db: Db, actor: Actor) -> Response[Any]:
    """One form action per change: ``action`` names it, ``phase_id``/``process_id`` the target."""
    form = await read_posted(request)
    action = form.get("action")
    await plan.ensure_workspace(db)
    try:
        if action == "add_phase":
            phase = await plan.add_phase(db, form.get("name"), form.get("flow_phase"))
            record(db, actor, "lifecycle.phase_added", phase, {"name": phase.name})
        elif action == "add_process":
            process = await plan.add_process(db, _id(form.get("phase_id")), form.get("name"))
            record(db, actor, "lifecycle.process_added", process, {"name": process.name})
        elif action == "template":
            added = await plan.apply_template(db, form.get("template"))
            record(
                db,
                actor,
                "lifecycle.template_applied",
                None,
                {"template": form.get("template"), "phases": [p.name for p in added]},
            )
        elif action in ("rename_phase", "rename_process"):
            phase_id, process_id = _target(form.get("phase_id"), form.get("process_id"), action)
            name = await plan.rename(db, phase_id, process_id, form.get("name"))
            record(
                db,
                actor,
                f"lifecycle.{action.split('_')[1]}_renamed",
                _ref(phase_id, process_id),
                {"name": name},
            )
        elif action in ("up_phase", "down_phase"):
            phase_id = _id(form.get("phase_id"))
            await plan.move_phase(db, phase_id, -1 if action.startswith("up") else 1)
            record(
                db,
                actor,
                "lifecycle.phase_moved",
                ("lifecycle_phases", phase_id),
                {"direction": action.split("_")[0]},
            )
        elif action in ("up_process", "down_process"):
            process_id = _id(form.get("process_id"))
            await plan.move_process(db, process_id, -1 if action.startswith("up") else 1)
            record(
                db,
                actor,
                "lifecycle.process_moved",
                ("lifecycle_processes", process_id),
                {"direction": action.split("_")[0]},
            )
        elif action == "retire_phase":
            phase = await plan.retire_phase(db, _id(form.get("phase_id")))
            record(db, actor, "lifecycle.phase_retired", phase, {"name": phase.name})
        elif action == "retire_process":
            process = await plan.retire_process(db, _id(form.get("process_id")))
            record(db, actor, "lifecycle.process_retired", process, {"name": process.name})
        elif action in ("restore_phase", "restore_process"):
            phase_id, process_id = _target(form.get("phase_id"), form.get("process_id"), action)
            await plan.restore(db, phase_id, process_id)
            record(
                db, actor, f"lifecycle.{action.split('_')[1]}_restored", _ref(phase_id, process_id)
            )
        else:
            raise HTTPException(status_code=400, detail=_("That change to the plan is unknown."))
    except plan.PlanError as exc:
        raise plan_error(exc) from exc
    return redirect(request, "/lifecycle")


def _target(phase: str, process: str, action: str) -> tuple[int | None, int | None]:
    if action.endswith("_phase"):
        return _id(phase), None
    return None, _id(process)


def _ref(phase_id: int | None, process_id: int | None) -> tuple[str, object]:
    if phase_id is not None:
        return ("lifecycle_phases", phase_id)
    return ("lifecycle_processes", process_id)


@post("/lifecycle/horizons", opt=role(Role.marketer) | audited("lifecycle.horizons_changed"))
async def save_horizons(
    request: Request[Any, Any, Any], db: Db, actor: Actor
) -> Response[Any] | Template:
    form = await read_posted(request)
    values, errors = read_horizons(form.values)
    settings = await plan.ensure_workspace(db)
    if errors:
        context = await _context(db, actor)
        context["horizons"] = {
            1: form.get("horizon_1"),
            2: form.get("horizon_2"),
            3: form.get("horizon_3"),
        }
        context["errors"] = errors
        return render(request, "lifecycle/plan.html", context, status_code=422)
    before = horizon_months(settings)
    settings.horizon_1_months, settings.horizon_2_months, settings.horizon_3_months = (
        values[1],
        values[2],
        values[3],
    )
    record(
        db,
        actor,
        "lifecycle.horizons_changed",
        ("lifecycle_settings", 1),
        {"before": before, "after": values},
    )
    return redirect(request, "/lifecycle")


ROUTES = [plan_page, change_plan, save_horizons]
