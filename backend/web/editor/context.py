"""The editor page's state, built from the database, and the fragment responses of each edit.

One template (editor/editor.html) draws the page; its blocks (``graph``,
``status``, ``problems``, ``panel``, ``versions``) are also the fragments an
edit answers with: the block htmx asked for first, the others as
out-of-band swaps (jinja2-fragments).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from jinja2_fragments.litestar import HTMXBlockTemplate
from litestar import Request
from litestar.exceptions import NotFoundException
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.auth.principal import Principal
from backend.flows.summaries import journey_counts
from backend.i18n import _
from backend.i18n.problems import graph_problem
from backend.models import Flow, FlowVersion, Role, User
from backend.web.contacts import filter_choices
from backend.web.editor.channels import channels_of, consent_channels, sending
from backend.web.editor.fields import ConfigField, config_errors, config_fields
from backend.web.editor.history import EditHistory
from backend.web.editor.ops import current_config
from backend.web.editor.references import Option, load_options, with_options
from backend.web.editor.view import CanvasView, NodeView, build_canvas, palette
from backend.web.editor.warnings import reach_warnings
from backend.web.flows import STATUSES
from nodes.sdk import EmptyConfig, NodeRegistry
from runtime.flows import FlowNotFound, get_flow

TEMPLATE = "editor/editor.html"


def registry_of(request: Request[Any, Any, Any]) -> NodeRegistry:
    registry: NodeRegistry = request.app.state.runtime.registry
    return registry


def history_of(request: Request[Any, Any, Any]) -> EditHistory:
    state = request.app.state
    history = getattr(state, "editor_history", None)
    if history is None:
        history = EditHistory()
        state.editor_history = history
    return history


async def load_flow(db: AsyncSession, flow_id: int, *, lock: bool = False) -> Flow:
    """The flow, or 404. ``lock`` holds its row until the request commits, and re-reads it.

    Edits lock before reading the draft they change, so the revision check
    compares against the row as it is now (``get_flow`` refreshes it).
    """
    try:
        return await get_flow(db, flow_id, lock=lock)
    except FlowNotFound:
        raise NotFoundException(_("There is no flow with this number.")) from None


@dataclass(frozen=True)
class VersionRow:
    number: int
    published_at: Any
    publisher: str
    note: str
    live: bool


@dataclass(frozen=True)
class Panel:
    """The side panel for one selected node: its look, its config form and what is wrong."""

    node: NodeView
    description: str
    fields: list[ConfigField]
    label: str
    errors: dict[str, str]
    other_errors: list[str]
    # Each output port with the step it leads to, and the steps it could lead to:
    # connecting from the keyboard, without dragging.
    outputs: list[tuple[str, str, str]]  # port id, port label, target id ("" when open)
    targets: list[tuple[str, str]]  # node id, what to call it
    saved: bool = False
    # The message tools under the form, as the step's channel asks: "email", "text" or "".
    preview: str = ""


async def version_rows(db: AsyncSession, flow: Flow) -> list[VersionRow]:
    rows = await db.execute(
        select(FlowVersion, User.name, User.email)
        .outerjoin(User, User.id == FlowVersion.published_by_id)
        .where(FlowVersion.flow_id == flow.id)
        .order_by(FlowVersion.number.desc())
    )
    return [
        VersionRow(
            version.number,
            version.published_at,
            name or email or _("someone no longer here"),
            version.note,
            version.id == flow.published_version_id,
        )
        for version, name, email in rows
    ]


def build_panel(
    flow: Flow,
    canvas: CanvasView,
    registry: NodeRegistry,
    node_id: str,
    *,
    read_errors: dict[str, str] | None = None,
    saved: bool = False,
    options: dict[str, list[Option]] | None = None,
) -> Panel | None:
    """The panel for ``node_id``, or None when the node is gone."""
    view = next((n for n in canvas.nodes if n.id == node_id), None)
    raw = next((n for n in flow.draft_graph.get("nodes", []) if n.get("id") == node_id), None)
    if view is None or raw is None:
        return None
    node_type = registry.get(view.type_id)
    model: type[BaseModel] = node_type.config_model if node_type else EmptyConfig
    config = current_config(raw, node_type) if node_type else raw.get("config") or {}
    errors = config_errors(model, config) if node_type else {}
    errors.update(read_errors or {})
    fields = with_options(config_fields(model, config), options or {}, canvas, node_id)
    names = {f.name for f in fields}
    routes = {
        str(e.get("port")): str(e.get("target"))
        for e in flow.draft_graph.get("edges", [])
        if e.get("source") == node_id
    }
    # Field errors sit next to their inputs; the rest (no trigger leads here...) above them.
    other = [message for key, message in errors.items() if key not in names]
    other += [graph_problem(e) for e in canvas.node_errors.get(node_id, []) if e.field is None]
    return Panel(
        node=view,
        description=_(node_type.description) if node_type else "",
        fields=fields,
        label=str(raw.get("label") or ""),
        errors={k: v for k, v in errors.items() if k in names},
        other_errors=other,
        outputs=[(p.id, p.label, routes.get(p.id, "")) for p in view.ports],
        targets=[
            (n.id, f"{n.label or n.type_name} ({n.id})")
            for n in canvas.nodes
            if n.accepts_input and n.id != node_id
        ],
        saved=saved,
    )


async def editor_context(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    actor: Principal,
    flow: Flow,
    **extra: Any,
) -> dict[str, Any]:
    """Everything editor.html needs; ``extra`` adds the panel, a notice, publish errors..."""
    registry = registry_of(request)
    channels = channels_of(request)
    history = history_of(request)
    readonly = not actor.allows(Role.marketer) or flow.status == "archived"
    canvas = build_canvas(flow.draft_graph, registry)
    # Publishing tells the marketer how many customers stay on the running version.
    counts = (await journey_counts(db, [flow.id])).get(flow.id)
    context: dict[str, Any] = {
        "nav": "flows",
        "flow": flow,
        "base": f"/flows/{flow.id}/edit",
        "statuses": STATUSES,
        "canvas": canvas,
        "palette": palette(registry),
        "readonly": readonly,
        "can_undo": history.can_undo(flow.id, flow.draft_revision),
        "can_redo": history.can_redo(flow.id, flow.draft_revision),
        "versions": await version_rows(db, flow),
        "warnings": await reach_warnings(db, flow, registry, consent_channels(registry, channels)),
        "in_flight": counts.active if counts else 0,
        "panel": None,
        "comparison": None,
        "tryout": None,
        "publishing": None,
        "moved": (),
        "trace": None,
        "notice": "",
        "publish_failed": False,
        "oob": set(),
    }
    selected = extra.pop("selected", None)
    if selected:
        nodes: list[dict[str, Any]] = flow.draft_graph.get("nodes", [])
        raw = next((n for n in nodes if n.get("id") == selected), {})
        node_type = registry.get(str(raw.get("type")))
        wanted = config_fields(node_type.config_model, {}) if node_type else []
        panel = build_panel(
            flow,
            canvas,
            registry,
            selected,
            read_errors=extra.pop("read_errors", None),
            saved=extra.pop("saved", False),
            options=await load_options(db, wanted),
        )
        sends = sending(registry, channels, str(raw.get("type")))
        if panel is not None and sends is not None:
            panel = replace(panel, preview=sends.preview)
        context["panel"] = panel
        if any(f.rule for f in wanted):
            context.update(await filter_choices(db))
    context.update(extra)
    return context


def fragments(
    context: dict[str, Any], main: str, *others: str, status_code: int = 200
) -> HTMXBlockTemplate:
    """Answer with block ``main`` for the request's target and ``others`` out of band."""
    context["oob"] = set(others)
    return HTMXBlockTemplate(
        template_name=TEMPLATE,
        block_names=[main, *others],
        context=context,
        status_code=status_code,
    )
