"""Settings > Audit log: who did what, newest first."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.params import FromQuery
from litestar.response import Template
from sqlalchemy import func, select

from backend.auth.guards import role
from backend.deps import Db, Paging
from backend.models import AuditEntry, Role
from backend.web.render import render


@get("/settings/audit", opt=role(Role.admin))
async def audit_page(
    request: Request[Any, Any, Any], db: Db, paging: Paging, action: FromQuery[str] = ""
) -> Template:
    stmt = select(AuditEntry)
    if action:
        stmt = stmt.where(AuditEntry.action.startswith(action.strip(), autoescape=True))
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
            "action": action,
            "total": total,
            "paging": paging,
            "pages": paging.count(total),
        },
        block="results",
    )


ROUTES = [audit_page]
