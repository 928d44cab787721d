"""Settings > Audit log: who did what to which subject, newest first, filtered and exported.

There is no route that edits or deletes an entry, and the database refuses
both (migration 0017_audit).
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, Request, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery
from litestar.response import Stream, Template
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.audit import changing_handlers, declared_audit, record
from backend.auth.guards import role
from backend.auth.throttle import LOGIN_FAILED, LOGIN_OK
from backend.csvfile import CsvWriter
from backend.deps import Actor, Db, Paging
from backend.models import AuditEntry, Base, Role
from backend.web.admin.audit_filter import ACTOR_TYPES, AuditFilter
from backend.web.render import render

EXPORT_BATCH = 1000
CSV_HEADER = (
    "at",
    "actor_type",
    "actor_id",
    "actor",
    "action",
    "subject_type",
    "subject_id",
    "details",
    "ip",
)


def provide_audit_filter(
    who: FromQuery[str] = "",
    actor_type: FromQuery[str] = "",
    action: FromQuery[str] = "",
    subject_type: FromQuery[str] = "",
    subject_id: FromQuery[str] = "",
    date_from: FromQuery[str] = "",
    date_to: FromQuery[str] = "",
) -> AuditFilter:
    """The page's filter from its query string (shared by the page and its CSV export)."""
    return AuditFilter.of(
        who=who,
        actor_type=actor_type,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        date_from=date_from,
        date_to=date_to,
    )


FILTERED = {"found": Provide(provide_audit_filter, sync_to_thread=False)}
Filtered = NamedDependency[AuditFilter]


def _choices(app: Litestar) -> dict[str, list[str]]:
    """Actions and object types to pick from, from the routes' declarations and the schema.

    (Reading them from the log would scan it on every page view.)
    """
    declared = {
        action
        for _name, handler in changing_handlers(app)
        if isinstance(actions := declared_audit(handler), tuple)
        for action in actions
        if not action.endswith("*")
    }
    return {
        "actions": sorted(declared | {LOGIN_OK, LOGIN_FAILED, "audit.exported"}),
        "subject_types": sorted(t.name for t in Base.metadata.sorted_tables),
    }


@get("/settings/audit", opt=role(Role.admin), dependencies=FILTERED)
async def audit_page(
    request: Request[Any, Any, Any],
    db: Db,
    paging: Paging,
    found: Filtered,
) -> Template:
    stmt = found.statement()
    total = await db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    entries = list(
        await db.scalars(
            stmt.order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
            .limit(paging.size)
            .offset(paging.offset)
        )
    )
    return render(
        request,
        "admin/audit.html",
        {
            "nav": "settings",
            "tab": "audit",
            "entries": entries,
            "filter": found,
            "query": found.query(),
            "actor_types": ACTOR_TYPES,
            **_choices(request.app),
            "total": total,
            "paging": paging,
            "pages": paging.count(total),
        },
        block="results",
    )


def _row(entry: AuditEntry) -> list[Any]:
    return [
        entry.at.isoformat(),
        entry.actor_type,
        entry.actor_id,
        entry.actor_label,
        entry.action,
        entry.target_type,
        entry.target_id,
        json.dumps(entry.details, ensure_ascii=False, sort_keys=True),
        entry.ip,
    ]


async def _csv_rows(
    sessions: async_sessionmaker[AsyncSession], found: AuditFilter
) -> AsyncIterator[str]:
    """The matching entries, oldest first, read in id order a batch at a time."""
    buffer = io.StringIO()
    writer = CsvWriter(buffer)
    writer.writerow(CSV_HEADER)
    after = 0
    while True:
        async with sessions() as db:
            batch = list(
                await db.scalars(
                    found.statement()
                    .where(AuditEntry.id > after)
                    .order_by(AuditEntry.id)
                    .limit(EXPORT_BATCH)
                )
            )
        for entry in batch:
            writer.writerow(_row(entry))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(batch) < EXPORT_BATCH:
            return
        after = batch[-1].id


@get("/settings/audit/export.csv", opt=role(Role.admin), dependencies=FILTERED)
async def audit_export(
    request: Request[Any, Any, Any],
    db: Db,
    actor: Actor,
    found: Filtered,
) -> Stream:
    """The entries as filtered on the page, as CSV (UTC times, details as JSON); audited."""
    record(db, actor, "audit.exported", None, found.as_details())
    return Stream(
        _csv_rows(request.app.state.sessions, found),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit-log.csv"'},
    )


ROUTES = [audit_page, audit_export]
