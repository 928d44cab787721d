"""The two ways a visitor becomes known: the site calls ``identify``, or submits a form.

Both end in ``stitch``. Neither lets the anonymous side change a known
contact: ``identify`` from the browser finds the contact by external id or
email and only creates one when there is none (with the fields given).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from litestar import Request
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.contacts.normalize import normalize_email
from backend.contacts.schemas import IdentifyIn
from backend.contacts.service import AttributeSchema, identify
from backend.models import Contact
from backend.personalization.stitch import Stitched, stitch

__all__ = ["FORM_FIELD", "VISITOR_ID", "identify_visitor", "stitch_submission"]

# The hidden input the snippet adds to forms that post to Touchflow.
FORM_FIELD = "visitor_id"
VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


async def identify_visitor(
    session: AsyncSession,
    *,
    visitor_id: str,
    site_id: int,
    data: IdentifyIn,
    now: datetime,
) -> tuple[int, Stitched] | None:
    """Find (or create) the contact ``data`` names and stitch the visitor to it.

    Returns the contact id and what moved, or None when the contact was erased.
    """
    email = normalize_email(data.email) if data.email else None
    clauses = []
    if data.external_id:
        clauses.append(Contact.external_id == data.external_id)
    if email:
        clauses.append(Contact.email == email)
    found = (
        await session.execute(
            select(Contact.id, Contact.erased_at).where(or_(*clauses)).order_by(Contact.id)
        )
    ).first()
    if found is not None and found.erased_at is not None:
        return None
    if found is not None:
        contact_id = int(found.id)
    else:
        created = await identify(
            session,
            data,
            source="web:identify",
            schema=await AttributeSchema.load(session),
            update=False,
        )
        assert created is not None
        contact_id = created.contact.id
    moved = await stitch(
        session, visitor_id=visitor_id, contact_id=contact_id, now=now, site_key_id=site_id
    )
    return contact_id, moved


async def stitch_submission(
    request: Request[Any, Any, Any], session: AsyncSession, contact_id: int, now: datetime
) -> Stitched | None:
    """After a form made or found ``contact_id``: stitch the visitor the snippet named, if any."""
    posted = (await request.form()).get(FORM_FIELD)
    if not isinstance(posted, str) or not VISITOR_ID.match(posted):
        return None
    return await stitch(session, visitor_id=posted, contact_id=contact_id, now=now)
