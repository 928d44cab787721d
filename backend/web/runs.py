"""Runs pages: journeys by status, and one journey's steps with their errors."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Template

from backend.auth.guards import role
from backend.deps import Db, Paging
from backend.flows.runs import journey_steps, list_journeys, node_labels
from backend.i18n import N_, _
from backend.models import Contact, Flow, Journey, JourneyStatus, Role
from backend.web.render import render

JOURNEY_STATUSES = {
    JourneyStatus.active.value: N_("Active"),
    JourneyStatus.waiting.value: N_("Waiting"),
    JourneyStatus.completed.value: N_("Completed"),
    JourneyStatus.exited.value: N_("Exited"),
    JourneyStatus.failed.value: N_("Failed"),
    JourneyStatus.cancelled.value: N_("Cancelled"),
}


@get("/runs", opt=role(Role.viewer))
async def runs_page(
    request: Request[Any, Any, Any], db: Db, paging: Paging, status: FromQuery[str] = ""
) -> Template:
    status = status if status in JOURNEY_STATUSES else ""
    rows, total = await list_journeys(db, status or None, paging)
    return render(
        request,
        "runs/list.html",
        {
            "nav": "runs",
            "rows": rows,
            "total": total,
            "status": status,
            "statuses": JOURNEY_STATUSES,
            "paging": paging,
            "pages": paging.count(total),
        },
        block="results",
    )


@get("/runs/{journey_id:int}", opt=role(Role.viewer))
async def run_page(request: Request[Any, Any, Any], db: Db, journey_id: FromPath[int]) -> Template:
    journey = await db.get(Journey, journey_id)
    if journey is None:
        raise NotFoundException(_("There is no run with this number."))
    flow = await db.get(Flow, journey.flow_id)
    contact = await db.get(Contact, journey.contact_id) if journey.contact_id else None
    return render(
        request,
        "runs/detail.html",
        {
            "nav": "runs",
            "journey": journey,
            "flow": flow,
            "contact": contact,
            "steps": await journey_steps(db, journey.id),
            "labels": {
                node_id: label
                for (_version, node_id), label in (
                    await node_labels(db, {journey.flow_version_id})
                ).items()
            },
            "statuses": JOURNEY_STATUSES,
        },
    )


ROUTES = [runs_page, run_page]
