"""Acting on many runs at once: retry or cancel (after a confirmation), and the CSV export.

A bulk action is asked for twice: the first post names the runs (the ticked
ones, or every run the filter matches) and answers with a confirmation that
says how many the action applies to; the second carries exactly those run
numbers, acts, and writes one audit entry naming how many were done and
skipped. Runs the action no longer applies to (retried meanwhile, the customer
back in the flow) are skipped with the reason, never half-changed.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Sequence
from typing import Any

from litestar import Request, get, post
from litestar.exceptions import ValidationException
from litestar.response import Stream, Template
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.audit import audited, record
from backend.auth.guards import role
from backend.csvfile import CsvWriter
from backend.deps import Actor, Db, Now
from backend.flows.runfilter import Attention, parse_filter
from backend.flows.runlist import iterate_runs, matching_ids
from backend.i18n import N_, _
from backend.models import Journey, JourneyStatus, Role
from backend.web.render import render, safe_next
from backend.web.runs import matching
from runtime import admin
from runtime.doorbell import ring_after_commit
from runtime.engine import Runtime

# One confirmation names at most this many runs; a larger set is narrowed first.
BULK_LIMIT = 1000
ACTIONS = {"retry": N_("Retry"), "cancel": N_("Cancel")}
APPLIES_TO = {
    "retry": (JourneyStatus.failed.value,),
    "cancel": (
        JourneyStatus.active.value,
        JourneyStatus.waiting.value,
        JourneyStatus.failed.value,
    ),
}
CSV_HEADER = (
    "run",
    "flow",
    "version",
    "contact_id",
    "email",
    "name",
    "visitor_id",
    "status",
    "needs_attention",
    "node_id",
    "node_label",
    "entered_at",
    "updated_at",
    "ended_at",
    "attempts",
    "last_error",
)


def _ids(values: Sequence[str]) -> list[int]:
    ids = []
    for value in values:
        if not value.strip().isdigit() or len(value.strip()) > 18:
            raise ValidationException(_("The run numbers sent are not valid."))
        ids.append(int(value))
    if len(ids) > BULK_LIMIT:
        raise ValidationException(
            _("Choose at most %(limit)d runs at a time.") % {"limit": BULK_LIMIT}
        )
    return list(dict.fromkeys(ids))


async def _applicable(db: AsyncSession, action: str, ids: list[int]) -> list[int]:
    if not ids:
        return []
    rows = await db.scalars(
        select(Journey.id)
        .where(Journey.id.in_(ids), Journey.status.in_(APPLIES_TO[action]))
        .order_by(Journey.entered_at.desc(), Journey.id.desc())
    )
    return list(rows)


async def _chosen(
    request: Request[Any, Any, Any], db: AsyncSession, form: Any, action: str, now: Any
) -> list[int]:
    """The runs the first post names: the ticked ones, or all the filter matches."""
    if form.get("scope") != "all":
        return _ids(form.getall("ids", []))
    run_filter, errors = parse_filter(form)
    if errors:
        raise ValidationException(next(iter(errors.values())))
    where, _attention = await matching(request, db, run_filter, now)
    statuses = APPLIES_TO[action]
    found = await matching_ids(db, [*where, Journey.status.in_(statuses)], BULK_LIMIT + 1)
    if len(found) > BULK_LIMIT:
        raise ValidationException(
            _(
                "More than %(limit)d runs match; narrow the filter (a flow, a status, "
                "dates) and act on them in parts."
            )
            % {"limit": BULK_LIMIT}
        )
    return found


@post("/runs/bulk", opt=role(Role.admin) | audited("runs.retried", "runs.cancelled"))
async def bulk_action(
    request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now
) -> Template:
    """First post: say how many runs the action applies to. Second (``confirmed``): act."""
    form = await request.form()
    action = str(form.get("action") or "")
    if action not in ACTIONS:
        raise ValidationException(_("Choose whether to retry or to cancel the runs."))
    now = clock.now()
    if form.get("confirmed") != "yes":
        chosen = await _chosen(request, db, form, action, now)
        if not chosen:
            raise ValidationException(_("Tick the runs to act on, or choose all matching runs."))
        applicable = await _applicable(db, action, chosen)
        return _confirm_page(request, form, action, chosen=len(chosen), ids=applicable, done=None)
    ids = _ids(form.getall("ids", []))
    done, skipped = await _apply(db, action, ids, now)
    record(
        db,
        actor,
        "runs.retried" if action == "retry" else "runs.cancelled",
        None,
        {"count": len(done), "skipped": len(skipped), "runs": done[:100]},
    )
    if done and action == "retry":
        rt: Runtime = request.app.state.runtime
        ring_after_commit(db, rt.doorbell)
    return _confirm_page(request, form, action, done=done, skipped=skipped)


def _confirm_page(request: Request[Any, Any, Any], form: Any, action: str, **page: Any) -> Template:
    """The bulk action's page: the question before, or what was done after."""
    back = safe_next(str(form.get("back") or ""), "/runs")
    context = {"nav": "runs", "action": action, "actions": ACTIONS, "back": back, **page}
    return render(request, "runs/confirm.html", context)


def _skip_reason(error: str) -> str:
    if "in the flow again" in error:
        return _("the customer is in the flow again in another run; cancel that one first.")
    if "does not exist" in error:
        return _("the run no longer exists.")
    return _("its status changed meanwhile; the action no longer applies.")


async def _apply(
    db: AsyncSession, action: str, ids: list[int], now: Any
) -> tuple[list[int], list[tuple[int, str]]]:
    done: list[int] = []
    skipped: list[tuple[int, str]] = []
    act = admin.retry_journey if action == "retry" else admin.cancel_journey
    for journey_id in ids:
        try:
            # Both refuse before they write anything, so a skipped run is untouched.
            await act(db, journey_id, now=now)
        except admin.AdminError as exc:
            skipped.append((journey_id, _skip_reason(str(exc))))
        else:
            done.append(journey_id)
    return done, skipped


async def _csv(
    sessions: async_sessionmaker[AsyncSession],
    where: list[ColumnElement[bool]],
    attention: Attention,
) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = CsvWriter(buffer)
    writer.writerow(CSV_HEADER)
    async for batch in iterate_runs(sessions, where, attention):
        for row in batch:
            j = row.journey
            writer.writerow(
                [
                    j.id,
                    row.flow_name,
                    row.version,
                    j.contact_id,
                    row.email,
                    row.name,
                    j.visitor_id,
                    j.status,
                    "yes" if row.attention else "no",
                    j.node_id,
                    row.node_label,
                    j.entered_at.isoformat(),
                    j.updated_at.isoformat(),
                    j.ended_at.isoformat() if j.ended_at else "",
                    j.attempts,
                    j.last_error,
                ]
            )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


@get("/runs/export.csv", opt=role(Role.marketer))
async def export_runs(request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now) -> Stream:
    """The list as filtered and ordered, streamed in keyset batches."""
    run_filter, errors = parse_filter(request.query_params)
    if errors:
        raise ValidationException(next(iter(errors.values())))
    where, attention = await matching(request, db, run_filter, clock.now())
    record(db, actor, "runs.exported", None, {k: v for k, v in run_filter.values.items() if v})
    return Stream(
        _csv(request.app.state.sessions, where, attention),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="runs.csv"'},
    )


ROUTES = [bulk_action, export_runs]
