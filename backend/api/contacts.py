"""``/api/v1/contacts``: read, export (GDPR access) and erase (GDPR erasure) contacts.

Writes are identify/track (backend/api/ingest.py).
"""

from __future__ import annotations

from typing import Any

from litestar import delete, get
from litestar.exceptions import NotFoundException

from backend.api.responses import INPUT, errors
from backend.api.schemas import ContactOut, ContactPage
from backend.audit import audited, record
from backend.auth.guards import role
from backend.contacts.privacy import erase_contact, export_contact
from backend.contacts.search import search_contacts
from backend.deps import Actor, Db, Paging
from backend.i18n import _
from backend.models import Contact, Role
from backend.validation import RowId, SearchText


async def _live(db: Db, contact_id: int) -> Contact:
    contact = await db.get(Contact, contact_id)
    if contact is None or contact.erased_at is not None:
        raise NotFoundException(_("No contact with id %(id)d.") % {"id": contact_id})
    return contact


@get("/contacts", opt=role(Role.viewer), responses=errors(*INPUT))
async def list_contacts(db: Db, paging: Paging, q: SearchText = "") -> ContactPage:
    """Contacts matching ``q`` (email, name or phone), newest first, a page at a time."""
    contacts, total = await search_contacts(db, q, paging)
    return ContactPage(
        items=[ContactOut.model_validate(c) for c in contacts],
        page=paging.number,
        per_page=paging.size,
        total=total,
    )


@get("/contacts/{contact_id:int}", opt=role(Role.viewer), responses=errors(*INPUT, 404))
async def get_contact(db: Db, contact_id: RowId) -> ContactOut:
    return ContactOut.model_validate(await _live(db, contact_id))


@get("/contacts/{contact_id:int}/export", opt=role(Role.marketer), responses=errors(*INPUT, 404))
async def export(db: Db, actor: Actor, contact_id: RowId) -> dict[str, Any]:
    """Everything stored about one contact (GDPR access request); the request is audited."""
    contact = await _live(db, contact_id)
    data = await export_contact(db, contact)
    record(db, actor, "contact.exported", contact)
    return data


@delete(
    "/contacts/{contact_id:int}",
    opt=role(Role.admin) | audited("contact.erased"),
    status_code=204,
    responses=errors(*INPUT, 404),
)
async def erase(db: Db, actor: Actor, contact_id: RowId) -> None:
    """Erase the contact's personal data everywhere (GDPR); anonymised counts stay. Audited."""
    contact = await _live(db, contact_id)
    await erase_contact(db, contact)
    record(db, actor, "contact.erased", ("contacts", contact.id))


ROUTES = [list_contacts, get_contact, export, erase]
