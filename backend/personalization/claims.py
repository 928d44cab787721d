"""Claimed form submissions: a contact's event held apart until it is proven.

Anyone can type a known contact's address into a form. Such a submission is
stored as that contact's event (flows react to it, so a confirmation or a
double opt-in email still reaches the address's real owner) but *claimed*:
rules and the contact's history leave it out, the browser sees nothing of the
contact, and the profile fields the form would have set wait in the event's
``pending_profile``. ``verify_claims`` makes it the contact's history and
applies those fields, oldest first, once there is proof: the submitting
browser is verified (``stitch``: a signed identify token or an emailed link),
or the owner confirms the double opt-in link sent for that very submission.
"""

from __future__ import annotations

from contextlib import suppress

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.contacts.identify import AttributeSchema, identify
from backend.contacts.normalize import InvalidValue
from backend.contacts.schemas import IdentifyIn
from backend.models import Contact, Event

__all__ = ["PENDING_PROFILE", "verify_claims"]

PENDING_PROFILE = "pending_profile"


async def verify_claims(
    session: AsyncSession,
    contact_id: int,
    *,
    visitor_id: str | None = None,
    event_id: int | None = None,
) -> int:
    """Turn the claimed events of ``contact_id`` from one browser (or one event) into history.

    Returns how many were verified; verifying again finds none.
    """
    where = [Event.contact_id == contact_id, Event.claimed.is_(True)]
    if event_id is not None:
        where.append(Event.id == event_id)
    elif visitor_id is not None:
        where.append(Event.visitor_id == visitor_id)
    else:
        return 0
    claimed = list(
        await session.scalars(
            select(Event).where(*where).order_by(Event.occurred_at, Event.id).with_for_update()
        )
    )
    contact = await session.get(Contact, contact_id)
    schema: AttributeSchema | None = None
    for event in claimed:
        held = (event.properties or {}).get(PENDING_PROFILE)
        if held and contact is not None and contact.erased_at is None:
            schema = schema or await AttributeSchema.load(session)
            # The contact may have changed since (its address now on another record, say):
            # then the held fields lapse, and the event is verified all the same.
            with suppress(InvalidValue, ValidationError):
                await identify(
                    session,
                    IdentifyIn.model_validate(held),
                    source=f"{event.source}:verified",
                    schema=schema,
                    create=False,
                )
        event.properties = {
            k: v for k, v in (event.properties or {}).items() if k != PENDING_PROFILE
        }
        event.claimed = False
    await session.flush()
    return len(claimed)
