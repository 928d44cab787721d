"""``/api/v1/contacts``: read contacts (writes are identify/track, in backend/contacts)."""

from __future__ import annotations

from litestar import get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery

from backend.api.schemas import ContactOut, ContactPage
from backend.auth.guards import role
from backend.deps import Db, Paging
from backend.i18n import _
from backend.models import Contact, Role
from backend.services.contacts import search_contacts


@get("/contacts", opt=role(Role.viewer))
async def list_contacts(db: Db, paging: Paging, q: FromQuery[str] = "") -> ContactPage:
    """Contacts matching ``q`` (email, name or phone), newest first, a page at a time."""
    contacts, total = await search_contacts(db, q, paging)
    return ContactPage(
        items=[ContactOut.model_validate(c) for c in contacts],
        page=paging.number,
        per_page=paging.size,
        total=total,
    )


@get("/contacts/{contact_id:int}", opt=role(Role.viewer))
async def get_contact(db: Db, contact_id: FromPath[int]) -> ContactOut:
    contact = await db.get(Contact, contact_id)
    if contact is None or contact.erased_at is not None:
        raise NotFoundException(_("No contact with id %(id)d.") % {"id": contact_id})
    return ContactOut.model_validate(contact)


ROUTES = [list_contacts, get_contact]
