"""A flow's conversion page, and "send everyone down the winner" for its splits.

The page reads only; the winner action publishes a new version whose graph
routes everyone who reaches the split down the chosen branch
(``backend.flows.winner``), after a confirmation page, and writes an audit
entry in the same transaction.
"""

from __future__ import annotations

from typing import Any

from babel import Locale, numbers
from litestar import Request, Response, get, post
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath
from litestar.response import Template
from pydantic import ValidationError

from backend.audit import audited, record
from backend.auth.guards import role
from backend.deps import Actor, Db
from backend.flows.conversion import FlowConversion, SplitResult, flow_conversion
from backend.flows.goal_form import GOAL_KINDS, STAGE_LABELS, goal_values, read_goal
from backend.flows.verdicts import Comparison, Outcome, verdict_text
from backend.flows.winner import WinnerError, route_to_winner
from backend.i18n import _, current_locale
from backend.i18n.formats import format_duration
from backend.models import Flow, FlowStatus, FlowVersion, Role
from backend.web.editor.compare import diff_graphs
from backend.web.editor.context import registry_of
from backend.web.posted import Posted, read_posted
from backend.web.render import redirect, render
from runtime.flows import publish, save_draft
from runtime.goals import FlowGoal
from runtime.graph import FlowGraph, InvalidGraph

BASE = "/flows/{flow_id:int}"


def _percent(value: float) -> str:
    # The locale's own percent pattern ("#,##0%", "#,##0 %") with one decimal.
    locale = Locale.parse(current_locale())
    pattern = locale.percent_formats[None].pattern.replace("0", "0.0", 1)
    return numbers.format_percent(value, format=pattern, locale=locale)


def _points(value: float) -> str:
    """A difference of two rates, in percentage points with its sign: +10.0, -3.1."""
    return numbers.format_decimal(value * 100, format="+#,##0.0;-#,##0.0", locale=current_locale())


def _decimal(value: float) -> str:
    return numbers.format_decimal(value, format="0.000", locale=current_locale())


def _comparisons(split: SplitResult) -> dict[str, Comparison]:
    """Each branch's comparison with the leader, by the branch's key."""
    return {c.baseline.key: c for c in split.verdict.comparisons}


# Numbers as the reader's locale writes them (the chart tables carry the raw values).
FORMATS = {
    "percent": _percent,
    "points": _points,
    "decimal": _decimal,
    "duration": format_duration,
    "comparisons": _comparisons,
}


async def _flow(db: Db, flow_id: int, *, lock: bool = False) -> Flow:
    flow = await db.get(Flow, flow_id, with_for_update=lock)
    if flow is None:
        raise NotFoundException(_("There is no flow with this number."))
    return flow


async def _conversion(request: Request[Any, Any, Any], db: Db, flow: Flow) -> FlowConversion:
    return await flow_conversion(db, flow.id, flow.published_version_id, registry_of(request))


def _same_graph(live: dict[str, Any], draft: dict[str, Any]) -> bool:
    """Whether the draft is the live version (as the editor saves it, with defaults filled)."""
    try:
        normal = FlowGraph.model_validate(draft).model_dump(mode="json")
    except ValidationError:
        return False
    return diff_graphs(live, normal).empty


def _draft_goal(flow: Flow) -> FlowGoal | None:
    raw = (flow.draft_graph.get("settings") or {}).get("goal")
    try:
        return FlowGoal.model_validate(raw) if raw else None
    except ValidationError:
        return None  # a goal an older release wrote: the form starts afresh


async def _page(
    request: Request[Any, Any, Any],
    db: Db,
    actor: Actor,
    flow: Flow,
    form: Posted | None = None,
    status_code: int = 200,
) -> Template:
    conversion = await _conversion(request, db, flow)
    return render(
        request,
        "flows/conversion.html",
        {
            "nav": "flows",
            "flow": flow,
            "conversion": conversion,
            "verdicts": {s.node_id: verdict_text(s.verdict) for s in conversion.splits},
            "can_edit": actor.allows(Role.marketer) and flow.status != FlowStatus.archived.value,
            "goal_kinds": GOAL_KINDS,
            "stage_labels": STAGE_LABELS,
            "goal_values": form.values if form else goal_values(_draft_goal(flow)),
            "goal_errors": form.errors if form else {},
            **FORMATS,
        },
        status_code=status_code,
    )


@get(BASE + "/conversion", opt=role(Role.viewer))
async def conversion_page(
    request: Request[Any, Any, Any], db: Db, actor: Actor, flow_id: FromPath[int]
) -> Template:
    return await _page(request, db, actor, await _flow(db, flow_id))


@post(BASE + "/goal", opt=role(Role.marketer) | audited("flow.goal_changed"))
async def goal_action(
    request: Request[Any, Any, Any], db: Db, actor: Actor, flow_id: FromPath[int]
) -> Response[Any] | Template:
    """Save the flow's goal into the draft settings; it counts from the next publish."""
    flow = await _flow(db, flow_id, lock=True)
    if flow.status == FlowStatus.archived.value:
        raise HTTPException(
            status_code=409, detail=_("This flow is archived, so it cannot be changed.")
        )
    form = await read_posted(request)
    goal = read_goal(form, _draft_goal(flow))
    if not form.ok:
        return await _page(request, db, actor, flow, form, status_code=422)
    settings = dict(flow.draft_graph.get("settings") or {})
    before = settings.pop("goal", None)
    if goal is not None:
        settings["goal"] = goal.model_dump(mode="json", exclude_defaults=False)
    await save_draft(
        db,
        flow.id,
        {**flow.draft_graph, "settings": settings},
        expected_revision=flow.draft_revision,
    )
    record(db, actor, "flow.goal_changed", flow, {"before": before, "after": settings.get("goal")})
    return redirect(request, f"/flows/{flow.id}/conversion#goal")


def _split(conversion: FlowConversion, node_id: str, branch: str) -> SplitResult:
    split = next((s for s in conversion.splits if s.node_id == node_id), None)
    if split is None:
        raise NotFoundException(_("The live version of this flow has no such split."))
    if branch not in {arm.key for arm in split.arms}:
        raise HTTPException(status_code=400, detail=_("Choose one of the split's branches."))
    return split


@get(BASE + "/splits/{node_id:str}/winner", opt=role(Role.marketer))
async def winner_dialog(
    request: Request[Any, Any, Any], db: Db, flow_id: FromPath[int], node_id: FromPath[str]
) -> Template:
    """What sending everyone down a branch will do, with the button that does it."""
    flow = await _flow(db, flow_id)
    branch = request.query_params.get("branch", "")
    split = _split(await _conversion(request, db, flow), node_id, branch)
    return render(
        request,
        "flows/winner.html",
        {
            "nav": "flows",
            "flow": flow,
            "split": split,
            "arm": next(arm for arm in split.arms if arm.key == branch),
            "verdict": verdict_text(split.verdict),
            "called": split.verdict.outcome is Outcome.winner
            and split.verdict.leader is not None
            and split.verdict.leader.key == branch,
        },
    )


@post(BASE + "/splits/{node_id:str}/winner", opt=role(Role.marketer) | audited("flow.split_winner"))
async def winner_action(
    request: Request[Any, Any, Any],
    db: Db,
    actor: Actor,
    flow_id: FromPath[int],
    node_id: FromPath[str],
) -> Response[Any]:
    """Publish the live version with the split routed to one branch; audited."""
    form = await read_posted(request)
    branch = form.get("branch")
    flow = await _flow(db, flow_id, lock=True)
    if flow.status == FlowStatus.archived.value:
        raise HTTPException(
            status_code=409, detail=_("This flow is archived, so it cannot be published.")
        )
    live = (
        await db.get(FlowVersion, flow.published_version_id) if flow.published_version_id else None
    )
    if live is None:
        raise HTTPException(status_code=409, detail=_("This flow has no published version yet."))
    if not _same_graph(live.graph, flow.draft_graph):
        raise HTTPException(
            status_code=409,
            detail=_(
                "The draft has changes that are not published yet. Publish or undo them "
                "first, so that this publishes nothing but the winner."
            ),
        )
    split = _split(await _conversion(request, db, flow), node_id, branch)
    try:
        graph = route_to_winner(live.graph, node_id, branch)
        await save_draft(db, flow.id, graph, expected_revision=flow.draft_revision)
        arm = next(arm for arm in split.arms if arm.key == branch)
        note = _("Everyone down branch %(branch)s of %(split)s") % {
            "branch": arm.label,
            "split": split.label,
        }
        version = await publish(db, flow.id, registry_of(request), actor.id, note=note)
    except (WinnerError, InvalidGraph) as exc:
        raise HTTPException(
            status_code=422,
            detail=_(
                "Routing everyone down this branch would leave a flow that cannot run: %(why)s"
            )
            % {"why": str(exc)},
        ) from exc
    record(
        db,
        actor,
        "flow.split_winner",
        flow,
        {
            "split": node_id,
            "branch": branch,
            "version": version.number,
            "verdict": split.verdict.outcome.value,
            "branches": {a.key: [a.customers, a.converted] for a in split.arms},
        },
    )
    return redirect(request, f"/flows/{flow.id}/conversion")


ROUTES = [conversion_page, goal_action, winner_dialog, winner_action]
