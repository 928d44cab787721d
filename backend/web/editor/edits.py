"""Each canvas edit is one request: apply it to the draft, save, answer with fragments.

Every edit names the draft revision it was made on; ``runtime.flows.save_draft``
refuses a stale one, so two tabs on the same draft get a 409 with a clear
message instead of one silently overwriting the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath
from litestar.response import Template

from backend.audit import DRAFT_EDIT, unaudited
from backend.auth.guards import role
from backend.deps import Actor, Db
from backend.i18n import _
from backend.models import Flow, Role
from backend.web.editor.context import (
    editor_context,
    fragments,
    history_of,
    load_flow,
    registry_of,
)
from backend.web.editor.fields import normalized, read_config
from backend.web.editor.ops import (
    EditRefused,
    add_node,
    configure,
    connect,
    delete_node,
    disconnect,
    move_node,
    rename,
    tidy,
)
from backend.web.posted import read_posted
from runtime.flows import DraftConflict, FlowStateError, save_draft

BASE = "/flows/{flow_id:int}/edit"
CANVAS_BLOCKS = ("status", "problems")
# Config inputs are named ``cfg.<field>`` so a field called "revision" or "label" cannot clash.
CONFIG_PREFIX = "cfg."
Edit = Callable[[dict[str, Any]], dict[str, Any]]


def conflict_handler(_request: Request[Any, Any, Any], _exc: DraftConflict) -> Template:
    """409 for a stale revision, from every editor endpoint: the editor reloads the canvas
    and says why."""
    return Template(
        template_name="editor/conflict.html",
        context={},
        status_code=409,
        headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"},
    )


def moved_response(context: dict[str, Any]) -> Template:
    """A move redraws only what moved: the status (the new revision) answers the request,
    the moved steps and their connections swap out of band (block ``moved``)."""
    return fragments(context, "status", "moved")


def refused(message: str) -> HTTPException:
    """422 with a sentence for the marketer (shown in the page's alert region)."""
    return HTTPException(status_code=422, detail=message)


def archived() -> HTTPException:
    return HTTPException(
        status_code=409, detail=_("This flow is archived, so its draft cannot be changed.")
    )


def revision_of(form: dict[str, str]) -> int:
    try:
        return int(form.get("revision", ""))
    except ValueError:
        raise refused(
            _("This change did not say which version of the draft it was made on. Reload the page.")
        ) from None


def _number(form: dict[str, str], name: str) -> float:
    try:
        return float(form.get(name, ""))
    except ValueError:
        raise refused(_("The position of the step is missing.")) from None


async def save_edit(
    request: Request[Any, Any, Any], db: Db, flow_id: int, revision: int, edit: Edit
) -> Flow:
    """Apply ``edit`` to the draft at ``revision`` and save it.

    A stale ``revision`` raises ``DraftConflict``, which the editor's router answers
    with ``conflict_handler``.
    """
    flow = await load_flow(db, flow_id, lock=True)
    before = flow.draft_graph
    try:
        graph = edit(before)
    except EditRefused as exc:
        raise refused(str(exc)) from None
    try:
        flow = await save_draft(db, flow_id, graph, expected_revision=revision)
    except FlowStateError:
        raise archived() from None
    history_of(request).edited(flow_id, before, flow.draft_revision)
    return flow


@post(BASE + "/nodes", opt=role(Role.marketer) | unaudited(DRAFT_EDIT))
async def add_node_action(
    request: Request[Any, Any, Any], db: Db, actor: Actor, flow_id: FromPath[int]
) -> Template:
    form = (await read_posted(request)).values
    registry = registry_of(request)
    x, y = _number(form, "x"), _number(form, "y")
    added: list[str] = []

    def edit(graph: dict[str, Any]) -> dict[str, Any]:
        fresh, node_id = add_node(graph, form.get("type", ""), x, y, registry)
        added.append(node_id)
        return fresh

    flow = await save_edit(request, db, flow_id, revision_of(form), edit)
    context = await editor_context(request, db, actor, flow, selected=added[0])
    return fragments(context, "graph", *CANVAS_BLOCKS, "panel")


@post(BASE + "/nodes/{node_id:str}/move", opt=role(Role.marketer) | unaudited(DRAFT_EDIT))
async def move_node_action(
    request: Request[Any, Any, Any],
    db: Db,
    actor: Actor,
    flow_id: FromPath[int],
    node_id: FromPath[str],
) -> Template:
    form = (await read_posted(request)).values
    x, y = _number(form, "x"), _number(form, "y")
    flow = await save_edit(
        request, db, flow_id, revision_of(form), lambda g: move_node(g, node_id, x, y)
    )
    return moved_response(await editor_context(request, db, actor, flow, moved={node_id}))


@post(BASE + "/nodes/{node_id:str}/delete", opt=role(Role.marketer) | unaudited(DRAFT_EDIT))
async def delete_node_action(
    request: Request[Any, Any, Any],
    db: Db,
    actor: Actor,
    flow_id: FromPath[int],
    node_id: FromPath[str],
) -> Template:
    form = (await read_posted(request)).values
    flow = await save_edit(
        request, db, flow_id, revision_of(form), lambda g: delete_node(g, node_id)
    )
    return await after_change(request, db, actor, flow, form, closes_panel=True)


@post(BASE + "/nodes/{node_id:str}/label", opt=role(Role.marketer) | unaudited(DRAFT_EDIT))
async def rename_action(
    request: Request[Any, Any, Any],
    db: Db,
    actor: Actor,
    flow_id: FromPath[int],
    node_id: FromPath[str],
) -> Template:
    """Rename a step in place on the canvas (double-click or F2): the label only, at a revision."""
    form = (await read_posted(request)).values
    label = form.get("label", "").strip()
    flow = await save_edit(
        request, db, flow_id, revision_of(form), lambda g: rename(g, node_id, label)
    )
    return fragments(await editor_context(request, db, actor, flow), "graph", *CANVAS_BLOCKS)


@post(BASE + "/nodes/{node_id:str}/config", opt=role(Role.marketer) | unaudited(DRAFT_EDIT))
async def configure_action(
    request: Request[Any, Any, Any],
    db: Db,
    actor: Actor,
    flow_id: FromPath[int],
    node_id: FromPath[str],
) -> Template:
    """Save the node's form. Invalid values are kept in the draft and marked, not thrown away."""
    form = (await read_posted(request)).values
    registry = registry_of(request)
    flow = await load_flow(db, flow_id)
    raw = next((n for n in flow.draft_graph.get("nodes", []) if n.get("id") == node_id), None)
    if raw is None:
        raise refused(_("That step is no longer on the canvas; it may have been deleted."))
    node_type = registry.get(str(raw.get("type")))
    if node_type is None:
        # Saving would replace the settings of a type we cannot read; keep them for its return.
        raise refused(
            _("This step's type (%(type)s) is not installed, so its settings cannot be edited.")
            % {"type": raw.get("type")}
        )
    model = node_type.config_model
    submitted = {k[len(CONFIG_PREFIX) :]: v for k, v in form.items() if k.startswith(CONFIG_PREFIX)}
    config, read_errors = read_config(model, submitted, raw.get("config") or {})
    config = normalized(model, config) if not read_errors else config
    label = form.get("node_label", "").strip()
    saved = await save_edit(
        request,
        db,
        flow_id,
        revision_of(form),
        lambda g: configure(g, node_id, config, label, node_type.version),
    )
    context = await editor_context(
        request, db, actor, saved, selected=node_id, read_errors=read_errors, saved=True
    )
    return fragments(context, "panel", "graph", *CANVAS_BLOCKS)


@post(BASE + "/edges", opt=role(Role.marketer) | unaudited(DRAFT_EDIT))
async def connect_action(
    request: Request[Any, Any, Any], db: Db, actor: Actor, flow_id: FromPath[int]
) -> Template:
    form = (await read_posted(request)).values
    registry = registry_of(request)
    source, port, target = (form.get(k, "") for k in ("source", "port", "target"))
    flow = await save_edit(
        request,
        db,
        flow_id,
        revision_of(form),
        lambda g: connect(g, source, port, target, registry),
    )
    return await after_change(request, db, actor, flow, form)


@post(BASE + "/edges/delete", opt=role(Role.marketer) | unaudited(DRAFT_EDIT))
async def disconnect_action(
    request: Request[Any, Any, Any], db: Db, actor: Actor, flow_id: FromPath[int]
) -> Template:
    form = (await read_posted(request)).values
    source, port = form.get("source", ""), form.get("port", "")
    flow = await save_edit(
        request, db, flow_id, revision_of(form), lambda g: disconnect(g, source, port)
    )
    return await after_change(request, db, actor, flow, form)


async def after_change(
    request: Request[Any, Any, Any],
    db: Db,
    actor: Actor,
    flow: Flow,
    form: dict[str, str],
    *,
    refill: bool = False,
    closes_panel: bool = False,
) -> Template:
    """The canvas after steps or connections came or went, and the open panel with it.

    What leads to a step decides whether "no trigger leads to this node" still
    holds, so the open step's problems are redrawn; only that list, so what the
    marketer is typing stays, unless ``refill`` (undo and redo change the step's
    settings too). A panel whose step is gone closes; with no step open, the panel
    is closed only when ``closes_panel`` (a test run or a publish dialog stays
    open while connecting).
    """
    shown = form.get("panel", "")
    known = {str(n.get("id")) for n in flow.draft_graph.get("nodes", []) if isinstance(n, dict)}
    if shown not in known:
        context = await editor_context(request, db, actor, flow)
        panel = ("panel",) if shown or closes_panel else ()
        return fragments(context, "graph", *CANVAS_BLOCKS, *panel)
    context = await editor_context(request, db, actor, flow, selected=shown)
    return fragments(context, "graph", *CANVAS_BLOCKS, "panel" if refill else "panel_problems")


@post(BASE + "/tidy", opt=role(Role.marketer) | unaudited(DRAFT_EDIT))
async def tidy_action(
    request: Request[Any, Any, Any], db: Db, actor: Actor, flow_id: FromPath[int]
) -> Template:
    """Auto-layout ("tidy up"): an edit like any other, so undo puts everything back."""
    form = (await read_posted(request)).values
    registry = registry_of(request)
    flow = await save_edit(request, db, flow_id, revision_of(form), lambda g: tidy(g, registry))
    return fragments(await editor_context(request, db, actor, flow), "graph", *CANVAS_BLOCKS)


async def _step_history(
    request: Request[Any, Any, Any], db: Db, actor: Actor, flow_id: int, *, redo: bool
) -> Template:
    form = (await read_posted(request)).values
    revision = revision_of(form)
    history = history_of(request)
    snapshot = history.peek(flow_id, revision, redo=redo)
    if snapshot is None:
        flow = await load_flow(db, flow_id)
        if flow.draft_revision != revision:
            raise DraftConflict(revision, flow.draft_revision)
        raise refused(_("There is nothing to redo.") if redo else _("There is nothing to undo."))
    flow = await load_flow(db, flow_id, lock=True)
    current = flow.draft_graph
    try:
        flow = await save_draft(db, flow_id, snapshot, expected_revision=revision)
    except FlowStateError:
        raise archived() from None
    history.stepped(flow_id, current, flow.draft_revision, redo=redo)
    return await after_change(request, db, actor, flow, form, refill=True, closes_panel=True)


@post(BASE + "/undo", opt=role(Role.marketer) | unaudited(DRAFT_EDIT))
async def undo_action(
    request: Request[Any, Any, Any], db: Db, actor: Actor, flow_id: FromPath[int]
) -> Template:
    return await _step_history(request, db, actor, flow_id, redo=False)


@post(BASE + "/redo", opt=role(Role.marketer) | unaudited(DRAFT_EDIT))
async def redo_action(
    request: Request[Any, Any, Any], db: Db, actor: Actor, flow_id: FromPath[int]
) -> Template:
    return await _step_history(request, db, actor, flow_id, redo=True)


ROUTES = [
    add_node_action,
    move_node_action,
    delete_node_action,
    configure_action,
    connect_action,
    disconnect_action,
    rename_action,
    tidy_action,
    undo_action,
    redo_action,
]
