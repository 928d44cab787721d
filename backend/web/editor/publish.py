"""Publishing the draft as a frozen version, and pausing, resuming or archiving the flow."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath
from litestar.response import Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import audited, record
from backend.auth.guards import role
from backend.deps import Actor, Db, Now
from backend.i18n import _, ngettext
from backend.models import FlowVersion, Role
from backend.web.editor.compare import audit_diff
from backend.web.editor.context import editor_context, fragments, load_flow, registry_of
from backend.web.editor.edits import BASE, refused, revision_of
from backend.web.posted import read_posted
from backend.web.render import redirect
from runtime.flows import DraftConflict, FlowStateError, archive, pause, publish, resume
from runtime.graph import InvalidGraph
from runtime.moves import Move, move_journeys, plan

NOTE_MAX = 500


JOURNEY_CHOICES = ("keep", "move")


@get(BASE + "/publish", opt=role(Role.marketer))
async def publish_dialog(
    request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now, flow_id: FromPath[int]
) -> Template:
    """Before publishing over running journeys: how many could move to the new version."""
    flow = await load_flow(db, flow_id)
    preview = await plan(db, flow_id, flow.draft_graph, now=clock.now())
    context = await editor_context(request, db, actor, flow, publishing=preview)
    return fragments(context, "panel")


@post(BASE + "/publish", opt=role(Role.marketer) | audited("flow.published", "flow.journeys_moved"))
async def publish_action(
    request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now, flow_id: FromPath[int]
) -> Template:
    """Validate and freeze the draft the marketer is looking at (its revision must be current).

    ``journeys=move`` also moves running journeys to the new version where
    their step is still there (``runtime.moves``); the default keeps them.
    """
    form = (await read_posted(request)).values
    revision = revision_of(form)
    note = form.get("note", "").strip()[:NOTE_MAX]
    choice = form.get("journeys", "keep")
    if choice not in JOURNEY_CHOICES:
        raise refused(_("Choose whether running customers keep their version or move."))
    flow = await load_flow(db, flow_id, lock=True)
    if flow.draft_revision != revision:
        raise DraftConflict(revision, flow.draft_revision)
    previous = await _latest_version(db, flow_id)
    try:
        version = await publish(db, flow_id, registry_of(request), actor.id, note=note)
    except InvalidGraph as exc:
        count = len(exc.errors)
        notice = ngettext(
            "Not published: fix this problem first.",
            "Not published: fix these %(num)d problems first.",
            count,
        ) % {"num": count}
        context = await editor_context(request, db, actor, flow, notice=notice)
        context["publish_failed"] = True
        return fragments(context, "status", "problems")
    except FlowStateError:
        raise HTTPException(
            status_code=409, detail=_("This flow is archived, so it cannot be published.")
        ) from None
    details = {
        "version": version.number,
        "previous": previous.number if previous else None,
        "note": note,
        **audit_diff(previous.graph if previous else None, version.graph),
    }
    record(db, actor, "flow.published", flow, details)
    notice = _("Published version %(num)d.") % {"num": version.number}
    if choice == "move":
        moved = await move_journeys(db, flow_id, version.id, now=clock.now())
        record(db, actor, "flow.journeys_moved", flow, moved.details(), at=clock.now())
        notice += " " + _moved_notice(moved)
    await db.refresh(flow)
    context = await editor_context(request, db, actor, flow, notice=notice)
    # From the dialog, the panel it stood in goes back to empty.
    others = ("problems", "versions", "panel") if "journeys" in form else ("problems", "versions")
    return fragments(context, "status", *others)


async def _latest_version(db: AsyncSession, flow_id: int) -> FlowVersion | None:
    return await db.scalar(
        select(FlowVersion)
        .where(FlowVersion.flow_id == flow_id)
        .order_by(FlowVersion.number.desc())
        .limit(1)
    )


def _moved_notice(moved: Move) -> str:
    text = ngettext(
        "%(num)d customer moved to it.", "%(num)d customers moved to it.", moved.moved
    ) % {"num": moved.moved}
    if moved.staying:
        text += " " + ngettext(
            "%(num)d stays on their version.", "%(num)d stay on their version.", moved.staying
        ) % {"num": moved.staying}
    return text


LIFECYCLE = {"pause": pause, "resume": resume}
LIFECYCLE_ACTIONS = {"pause": "flow.paused", "resume": "flow.resumed", "archive": "flow.archived"}


@post(
    BASE + "/lifecycle",
    opt=role(Role.marketer) | audited("flow.paused", "flow.resumed", "flow.archived"),
)
async def lifecycle_action(
    request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now, flow_id: FromPath[int]
) -> Template | Response[Any]:
    """Pause, resume or archive the flow (``action`` in the form)."""
    form = (await read_posted(request)).values
    action = form.get("action", "")
    await load_flow(db, flow_id)
    try:
        if action == "archive":
            exited = await archive(db, flow_id, now=clock.now())
            details: dict[str, Any] = {"exited": exited}
        elif action in LIFECYCLE:
            await LIFECYCLE[action](db, flow_id)
            details = {}
        else:
            raise refused(_("Choose pause, resume or archive."))
    except FlowStateError as exc:
        messages = {
            "pause": _("Only an active flow can be paused."),
            "resume": _("Only a paused flow can be resumed."),
        }
        raise HTTPException(status_code=409, detail=messages.get(action, str(exc))) from None
    flow = await load_flow(db, flow_id)
    await db.refresh(flow)
    record(db, actor, LIFECYCLE_ACTIONS[action], flow, details)
    if action == "archive":
        # Archived flows are read-only: reload the page so the palette and handles go away.
        return redirect(request, f"/flows/{flow_id}/edit")
    context = await editor_context(request, db, actor, flow)
    return fragments(context, "status", "graph", "problems")


ROUTES = [publish_dialog, publish_action, lifecycle_action]
