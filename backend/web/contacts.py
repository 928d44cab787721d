"""Contacts page: search and page through known customers."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.params import FromQuery
from litestar.response import Template
from sqlalchemy import select

from backend.auth.guards import role
from backend.deps import Db, Paging
from backend.models import Role, User
from backend.services.contacts import search_contacts
from backend.web.render import render


@get("/contacts", opt=role(Role.viewer))
async def contacts_page(
    request: Request[Any, Any, Any], db: Db, paging: Paging, q: FromQuery[str] = ""
) -> Template:
    contacts, total = await search_contacts(db, q, paging)
    owner_ids = {c.owner_id for c in contacts if c.owner_id is not None}
    owners = (
        dict((await db.execute(select(User.id, User.name).where(User.id.in_(owner_ids)))).tuples())
        if owner_ids
        else {}
    )
    return render(
        request,
        "contacts/list.html",
        {
            "nav": "contacts",
            "contacts": contacts,
            "owners": owners,
            "total": total,
            "q": q,
            "paging": paging,
            "pages": paging.count(total),
        },
        block="results",
    )


ROUTES = [contacts_page]
