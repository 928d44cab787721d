"""Runs pages: the filtered list (failed and stuck first, keyset pages) and one run's story."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Request, get
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath, FromQuery
from litestar.response import Template
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.auth.guards import role
from backend.deps import Actor, Db, Now, Paging
from backend.flows.rundetail import run_story
from backend.flows.runfilter import (
    FILTER_STATUSES,
    JOURNEY_STATUSES,
    Attention,
    RunFilter,
    attention,
    filter_conditions,
    held_nodes,
    parse_filter,
)
from backend.flows.runlist import (
    COUNT_LIMIT,
    BadCursor,
    Cursor,
    count_attention,
    count_runs,
    runs_page,
)
from backend.flows.runs import node_labels
from backend.i18n import _
from backend.models import Contact, Flow, FlowVersion, Journey, Role
from backend.web.render import render
from runtime.engine import Runtime

__all__ = ["JOURNEY_STATUSES", "ROUTES", "matching"]


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def matching(
    request: Request[Any, Any, Any], db: AsyncSession, run_filter: RunFilter, now: Any
) -> tuple[list[ColumnElement[bool]], Attention]:
    """The filter's SQL conditions and what "needs attention" means, at ``now``."""
    held = await held_nodes(db, _runtime(request).versions)
    where = await filter_conditions(db, run_filter, now, held)
    return where, attention(now, held)


@get("/runs", opt=role(Role.viewer))
async def runs_list(
    request: Request[Any, Any, Any],
    db: Db,
    paging: Paging,
    clock: Now,
    actor: Actor,
    after: FromQuery[str] = "",
) -> Template:
    run_filter, errors = parse_filter(request.query_params)
    try:
        cursor = Cursor.parse(after)
    except BadCursor:
        raise ValidationException(
            _("This page link is out of date or damaged; start again from the first page.")
        ) from None
    rows: list[Any] = []
    following = None
    total = urgent = 0
    if not errors:
        now = clock.now()
        where, needs_attention = await matching(request, db, run_filter, now)
        rows, following = await runs_page(db, where, needs_attention, paging.size, cursor)
        total = await count_runs(db, where)
        urgent = await count_attention(db, where, needs_attention)
    flows = (await db.execute(select(Flow.id, Flow.name).order_by(Flow.name, Flow.id))).all()
    query = urlencode({k: v for k, v in run_filter.values.items() if v})
    return render(
        request,
        "runs/list.html",
        {
            "nav": "runs",
            "rows": rows,
            "total": total,
            "attention": urgent,
            "count_limit": COUNT_LIMIT,
            "values": run_filter.values,
            "errors": errors,
            "filtered": run_filter.active,
            "flows": flows,
            "statuses": FILTER_STATUSES,
            "query": query,
            "after": after,
            "next_page": str(following) if following else "",
            "per_page": paging.size,
            "can_act": actor.allows(Role.admin),
            "can_export": actor.allows(Role.marketer),
        },
        block="results",
        status_code=422 if errors else 200,
    )


@get("/runs/{journey_id:int}", opt=role(Role.viewer))
async def run_page(
    request: Request[Any, Any, Any], db: Db, actor: Actor, journey_id: FromPath[int]
) -> Template:
    journey = await db.get(Journey, journey_id)
    if journey is None:
        raise NotFoundException(_("There is no run with this number."))
    flow = await db.get(Flow, journey.flow_id)
    version = await db.get(FlowVersion, journey.flow_version_id)
    contact = await db.get(Contact, journey.contact_id) if journey.contact_id else None
    labels = {
        node_id: label
        for (_version, node_id), label in (await node_labels(db, {journey.flow_version_id})).items()
    }
    return render(
        request,
        "runs/detail.html",
        {
            "nav": "runs",
            "journey": journey,
            "flow": flow,
            "version": version,
            "contact": contact,
            "steps": await run_story(db, journey, labels),
            "labels": labels,
            "statuses": JOURNEY_STATUSES,
            "can_act": actor.allows(Role.admin),
        },
    )


ROUTES = [runs_list, run_page]
