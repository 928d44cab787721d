""" "Show on canvas": the editor at a run's flow version, with the run's path marked.

The path is the run's step rows in order: every node it visited (with the
step numbers there, like test mode shows) and every port it left through.
When the run's version is no longer the draft, the canvas shows that version
read-only; otherwise the ordinary editor, with the path on top.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from litestar import Request, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template
from sqlalchemy import select

from backend.auth.guards import role
from backend.deps import Actor, Db
from backend.i18n import _
from backend.models import FlowVersion, Journey, Role, Step
from backend.web.editor.compare import diff_graphs
from backend.web.editor.context import TEMPLATE, editor_context, load_flow, registry_of
from backend.web.editor.edits import BASE
from backend.web.editor.view import build_canvas
from backend.web.render import render


@dataclass(frozen=True)
class RunTrace:
    """The shape the canvas marks (``visited`` node -> step numbers, ``taken`` ports)."""

    visited: dict[str, list[int]] = field(default_factory=dict)
    taken: set[tuple[str, str]] = field(default_factory=set)

    def as_json(self) -> str:
        return json.dumps({"visited": sorted(self.visited), "taken": sorted(self.taken)})


def trace_of(steps: list[Step], current: str | None) -> RunTrace:
    """Nodes visited in order (numbered from 1) and the ports the run left through."""
    trace = RunTrace()
    for number, step in enumerate(steps, start=1):
        trace.visited.setdefault(step.node_id, []).append(number)
        if step.port:
            trace.taken.add((step.node_id, step.port))
    if current and current not in trace.visited:
        trace.visited[current] = []
    return trace


@get(BASE + "/runs/{journey_id:int}", opt=role(Role.viewer))
async def run_on_canvas(
    request: Request[Any, Any, Any],
    db: Db,
    actor: Actor,
    flow_id: FromPath[int],
    journey_id: FromPath[int],
) -> Template:
    flow = await load_flow(db, flow_id)
    journey = await db.get(Journey, journey_id)
    if journey is None or journey.flow_id != flow.id:
        raise NotFoundException(_("There is no run with this number in this flow."))
    version = await db.get(FlowVersion, journey.flow_version_id)
    assert version is not None  # a journey's version row is never deleted (foreign key)
    steps = list(
        await db.scalars(
            select(Step).where(Step.journey_id == journey.id).order_by(Step.started_at, Step.id)
        )
    )
    live = journey.status in ("active", "waiting")
    trace = trace_of(steps, journey.node_id if live else None)
    context = await editor_context(request, db, actor, flow)
    is_draft = diff_graphs(version.graph, flow.draft_graph).empty
    if not is_draft:
        context["canvas"] = build_canvas(version.graph, registry_of(request))
        context["readonly"] = True
        context["warnings"] = []
    context["trace"] = trace
    context["run_view"] = {
        "journey": journey,
        "version": version.number,
        "is_draft": is_draft,
        "path": trace.as_json(),
    }
    return render(request, TEMPLATE, context)


ROUTES = [run_on_canvas]
