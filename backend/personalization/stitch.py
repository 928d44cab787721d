"""Identity stitching: an anonymous visitor turns out to be a known contact.

``stitch`` runs in the caller's transaction once the identity is *verified*
(a signed identify token, a link Touchflow emailed; see ``identify.py`` for
the claims before that) and makes the visitor's past count for the contact:

- the visitor's anonymous events get the contact's id (they keep the visitor id
  too, so nothing is lost and the run history still shows where they came from);
- the visitor's journeys move to the contact; a live one in a flow where the
  contact already has a live journey ends as ``exited``/``merged`` instead, so
  no one is in a flow twice;
- content a flow assigned to the visitor follows the contact;
- the visitor row is linked, so later page views are the contact's events;
- forms it sent for this contact (claimed events, see ``claims.py``) become the
  contact's history, and the profile fields they held are applied.

The contact's own data is never touched: anonymous traits stay on the visitor.
Stitching again (the same pair) changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import JourneyStatus, SlotAssignment, Visitor
from backend.models.journeys import LIVE_STATUSES
from backend.personalization.claims import verify_claims
from backend.personalization.recent import changed_on_commit
from runtime.enroll import entry_key
from runtime.sql import EVENTS, JOURNEYS, close_open_steps

__all__ = ["MERGED", "Stitched", "stitch"]

MERGED = "merged"


@dataclass(frozen=True)
class Stitched:
    """What moved: events and journeys re-owned, journeys ended as duplicates."""

    events: int = 0
    journeys: int = 0
    merged: int = 0
    relinked: bool = False  # the visitor was linked to another contact before


async def stitch(
    session: AsyncSession,
    *,
    visitor_id: str,
    contact_id: int,
    now: datetime,
    site_key_id: int | None = None,
) -> Stitched:
    """Link ``visitor_id`` to ``contact_id`` and move its history (see the module docstring)."""
    visitor = await session.get(Visitor, visitor_id, with_for_update=True)
    # Decisions cached for this visitor name its old contact (or none) and old content.
    changed_on_commit(session, visitor_ids=[visitor_id])
    relinked = False
    if visitor is None:
        visitor = Visitor(
            id=visitor_id,
            site_key_id=site_key_id,
            traits={},
            first_seen_at=now,
            last_seen_at=now,
        )
        session.add(visitor)
    elif visitor.contact_id not in (None, contact_id):
        # A shared computer: from now on this browser is the new contact. What the
        # previous one did stays theirs; only anonymous history moves below.
        relinked = True
    if visitor.contact_id != contact_id:
        visitor.contact_id = contact_id
        visitor.stitched_at = now
    visitor.claimed_contact_id = None  # verified now: no longer a mere claim
    visitor.claimed_at = None
    visitor.last_seen_at = now
    await session.flush()

    events = await session.execute(
        update(EVENTS)
        .where(EVENTS.c.visitor_id == visitor_id, EVENTS.c.contact_id.is_(None))
        .values(contact_id=contact_id)
    )
    moved, merged = await _move_journeys(session, visitor_id, contact_id, now)
    await session.execute(
        update(SlotAssignment)
        .where(SlotAssignment.visitor_id == visitor_id, SlotAssignment.contact_id.is_(None))
        .values(contact_id=contact_id)
    )
    await verify_claims(session, contact_id, visitor_id=visitor_id)
    return Stitched(
        events=int(events.rowcount),  # type: ignore[attr-defined]
        journeys=moved,
        merged=merged,
        relinked=relinked,
    )


async def _move_journeys(
    session: AsyncSession, visitor_id: str, contact_id: int, now: datetime
) -> tuple[int, int]:
    rows = (
        await session.execute(
            select(JOURNEYS.c.id, JOURNEYS.c.flow_id, JOURNEYS.c.status)
            .where(JOURNEYS.c.visitor_id == visitor_id, JOURNEYS.c.contact_id.is_(None))
            .order_by(JOURNEYS.c.id)
        )
    ).all()
    moved = merged = 0
    for row in rows:
        this = JOURNEYS.c.id == row.id
        if row.status not in LIVE_STATUSES:
            # Finished journeys are history: the contact's now, re-entry rules included.
            await session.execute(update(JOURNEYS).where(this).values(contact_id=contact_id))
            moved += 1
            continue
        try:
            async with session.begin_nested():
                await session.execute(
                    update(JOURNEYS)
                    .where(this)
                    .values(
                        contact_id=contact_id,
                        entry_key=entry_key(row.flow_id, contact_id, None),
                        updated_at=now,
                    )
                )
            moved += 1
        except IntegrityError:
            # The contact is already live in this flow: theirs continues, this one ends.
            await _end_as_merged(session, row.id, contact_id, now)
            merged += 1
    return moved, merged


async def _end_as_merged(
    session: AsyncSession, journey_id: int, contact_id: int, now: datetime
) -> None:
    await close_open_steps(
        session, select(JOURNEYS.c.id).where(JOURNEYS.c.id == journey_id), MERGED, now
    )
    await session.execute(
        update(JOURNEYS)
        .where(JOURNEYS.c.id == journey_id)
        .values(
            contact_id=contact_id,
            status=JourneyStatus.exited.value,
            exit_reason=MERGED,
            entry_key=None,
            due_at=None,
            wait_event_type=None,
            wait_match=None,
            lease_owner=None,
            lease_until=None,
            updated_at=now,
            ended_at=now,
        )
    )
