"""The canvas's "Results" overlay: the flow's counts per node and edge, as JSON the
editor's results.js lays over the canvas. Labels and numbers arrive translated and
formatted for the reader, so the script only places them."""

from __future__ import annotations

from typing import Any

from babel import dates
from litestar import Request, Response, get
from litestar.params import FromPath

from backend.auth.guards import role
from backend.deps import Db, Now
from backend.errors import json_error
from backend.flows.results import (
    FlowResults,
    Messages,
    NodeResult,
    ResultsFilter,
    ResultsFilterError,
    flow_results,
)
from backend.i18n import N_, _, current_locale
from backend.i18n.formats import format_number, format_percent
from backend.models import Role
from backend.web.editor.context import load_flow
from backend.web.editor.edits import BASE

# What the overlay shows per node, in this order; message counts only on message nodes.
NODE_METRICS = (
    ("reached", N_("Reached")),
    ("waiting", N_("Waiting now")),
    ("failed", N_("Failed")),
)
MESSAGE_METRICS = (
    ("sent", N_("Sent")),
    ("delivered", N_("Delivered")),
    ("opened", N_("Opened")),
    ("clicked", N_("Clicked")),
    ("bounced", N_("Bounced")),
    ("unsubscribed", N_("Unsubscribed")),
)


def _item(metric: str, label: str, value: int, rate: float | None = None) -> dict[str, Any]:
    text = format_number(value)
    if rate is not None:
        text = f"{text} ({format_percent(rate)})"
    return {"metric": metric, "label": _(label), "value": value, "text": text}


def _node_items(node: NodeResult) -> list[dict[str, Any]]:
    items = [_item(metric, label, getattr(node, metric)) for metric, label in NODE_METRICS]
    messages: Messages | None = node.messages
    if messages is not None:
        items += [
            _item(
                metric,
                label,
                getattr(messages, metric),
                None if metric == "sent" else messages.rate(metric),
            )
            for metric, label in MESSAGE_METRICS
        ]
    return items


def _summary(found: FlowResults) -> str:
    start, end = (
        dates.format_date(day, format="medium", locale=current_locale())
        for day in (found.filter.start, found.filter.end)
    )
    if found.filter.version is None:
        return _("%(start)s to %(end)s, every version") % {"start": start, "end": end}
    return _("%(start)s to %(end)s, version %(num)d") % {
        "start": start,
        "end": end,
        "num": found.filter.version,
    }


def overlay(found: FlowResults) -> dict[str, Any]:
    return {
        "summary": _summary(found),
        "from": found.filter.start.isoformat(),
        "to": found.filter.end.isoformat(),
        "layout": found.layout.number if found.layout is not None else None,
        "nodes": [
            {"id": node.node_id, "label": node.label, "items": _node_items(node)}
            for node in found.nodes
        ],
        "edges": [
            {
                "source": edge.source,
                "port": edge.port,
                "target": edge.target,
                "value": edge.customers,
                "text": format_number(edge.customers),
                "label": _("%(num)s went this way") % {"num": format_number(edge.customers)},
            }
            for edge in found.edges
        ],
    }


@get(BASE + "/results", opt=role(Role.viewer))
async def results_overlay(
    request: Request[Any, Any, Any], db: Db, clock: Now, flow_id: FromPath[int]
) -> Response[Any]:
    """Counts for the overlay; ``from``, ``to`` (YYYY-MM-DD) and ``version`` (a number) filter."""
    flow = await load_flow(db, flow_id)
    try:
        wanted = ResultsFilter.parse(dict(request.query_params), today=clock.now().date())
        found = await flow_results(db, flow.id, flow.published_version_id, wanted)
    except ResultsFilterError as exc:
        return json_error(400, "bad_filter", str(exc))
    return Response(overlay(found))


ROUTES = [results_overlay]
