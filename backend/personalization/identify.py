"""How a visitor becomes known: a claim first, a verified identity after proof.

A browser's own word (the snippet's ``identify`` with an email, a form it
submitted) is a *claim*: the visitor row remembers the claimed contact, and
nothing of that contact is shown to the browser or written into its history.
A proof (``backend.personalization.verify``: the site backend's signed token or
a link Touchflow emailed) makes it verified, and ``stitch`` moves the whole
anonymous history over. Neither path changes a known contact's data: a
browser may only create a contact that does not exist (with the fields given).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from litestar import Request
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.auth.keys import normalize_origin
from backend.contacts.identify import AttributeSchema, identify
from backend.contacts.normalize import normalize_email
from backend.contacts.schemas import IdentifyIn
from backend.models import Contact, SiteKey, Visitor
from backend.personalization.claims import verify_claims
from backend.personalization.recent import changed_on_commit
from backend.personalization.stitch import stitch
from backend.personalization.verify import sign_link_token, with_link_token

__all__ = [
    "FORM_FIELD",
    "VISITOR_ID",
    "claim",
    "confirm_claim",
    "create_contact",
    "find_contact",
    "stitch_submission",
    "verifying_link",
]

# The hidden input the snippet adds to forms that post to Touchflow.
FORM_FIELD = "visitor_id"
VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


async def find_contact(
    session: AsyncSession, *, email: str | None, external_id: str | None
) -> tuple[int, bool] | None:
    """The contact named by external id or email, and whether it was erased; None if none."""
    address = normalize_email(email) if email else None
    clauses = []
    if external_id:
        clauses.append(Contact.external_id == external_id)
    if address:
        clauses.append(Contact.email == address)
    if not clauses:
        return None
    found = (
        await session.execute(
            select(Contact.id, Contact.erased_at).where(or_(*clauses)).order_by(Contact.id)
        )
    ).first()
    return None if found is None else (int(found.id), found.erased_at is not None)


async def create_contact(session: AsyncSession, data: IdentifyIn, source: str) -> int:
    """A new contact with the fields given (the caller checked that none exists)."""
    created = await identify(
        session, data, source=source, schema=await AttributeSchema.load(session), update=False
    )
    assert created is not None
    return created.contact.id


async def claim(
    session: AsyncSession,
    *,
    visitor_id: str,
    contact_id: int,
    now: datetime,
    site_key_id: int | None = None,
) -> bool:
    """Record that this browser says it is ``contact_id``; True when it is verified already.

    A browser verified as someone else that now claims another contact is
    unlinked (a shared computer): it sees neither of them until a proof.
    """
    visitor = await session.get(Visitor, visitor_id, with_for_update=True)
    if visitor is None:
        visitor = Visitor(
            id=visitor_id, site_key_id=site_key_id, traits={}, first_seen_at=now, last_seen_at=now
        )
        session.add(visitor)
    if visitor.contact_id == contact_id:
        return True
    changed_on_commit(session, visitor_ids=[visitor_id])
    visitor.contact_id = None
    visitor.claimed_contact_id = contact_id
    visitor.claimed_at = now
    visitor.last_seen_at = now
    await session.flush()
    return False


async def verifying_link(
    session: AsyncSession, app_secret: str, target: str, contact_id: int, issued_at: int
) -> str:
    """``target`` with a ``tf_verify`` proof for ``contact_id`` when it is on a site of ours.

    Only for a live site key's allowed origins: another site must not receive a
    token it could redeem.
    """
    parts = urlsplit(target)
    origin = normalize_origin(f"{parts.scheme}://{parts.netloc}")
    if origin is None:
        return target
    allowed = await session.scalars(
        select(SiteKey.allowed_origins).where(SiteKey.revoked_at.is_(None))
    )
    if not any(origin in (origins or []) for origins in allowed):
        return target
    return with_link_token(target, sign_link_token(app_secret, contact_id, issued_at))


async def stitch_submission(
    request: Request[Any, Any, Any], session: AsyncSession, contact_id: int, now: datetime
) -> tuple[str | None, bool]:
    """After a form made or found ``contact_id``: the visitor the form carried claims it.

    A claim only: anyone can type someone else's address into a form. Returns
    the visitor's id (None when the form carried no usable one) and whether that
    browser was verified as ``contact_id`` already.
    """
    posted = (await request.form()).get(FORM_FIELD)
    if not isinstance(posted, str) or not VISITOR_ID.match(posted):
        return None, False
    visitor = await session.get(Visitor, posted)
    if visitor is not None and visitor.forgotten_at is not None:
        return None, False
    verified = await claim(session, visitor_id=posted, contact_id=contact_id, now=now)
    return posted, verified


async def confirm_claim(
    session: AsyncSession, contact_id: int, event_id: int, now: datetime, *, browser: str | None
) -> None:
    """The address's owner confirmed the double opt-in sent for submission ``event_id``.

    The submission becomes the contact's history whichever browser confirmed.
    ``browser`` is the visitor that sent it when the confirmation comes from that
    same browser (its claim cookie, on Touchflow's origin): it is verified too, so
    whatever page the form redirects to, its snippet learns it on its next call. A
    confirmation from elsewhere proves the address, not the browser that typed it.
    """
    await verify_claims(session, contact_id, event_id=event_id)
    if browser is None:
        return
    visitor = await session.get(Visitor, browser)
    if visitor is None or visitor.forgotten_at is not None:
        return
    await stitch(session, visitor_id=browser, contact_id=contact_id, now=now)
