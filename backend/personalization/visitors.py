"""Per-visitor reads and writes behind the snippet endpoints.

A visitor id is a random bearer value the snippet made; a visitor row belongs
to the site key it first came through, and a request through another key
never sees it (nor its contact's content).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import ContentVariant, SlotAssignment, Visitor
from backend.personalization.decide import UTM_KEYS, Chosen

__all__ = ["Known", "assigned_content", "lookup", "touch"]


@dataclass(frozen=True)
class Known:
    """What a request may know about its visitor: whether it exists, and its contact."""

    exists: bool
    contact_id: int | None = None


async def lookup(session: AsyncSession, visitor_id: str, site_id: int) -> Known:
    row = (
        await session.execute(
            select(Visitor.contact_id, Visitor.site_key_id).where(Visitor.id == visitor_id)
        )
    ).one_or_none()
    if row is None or row.site_key_id not in (None, site_id):
        return Known(exists=False)
    return Known(exists=True, contact_id=row.contact_id)


async def assigned_content(
    session: AsyncSession,
    visitor_id: str,
    contact_id: int | None,
    slots: Sequence[str],
    now: datetime,
) -> dict[str, Chosen]:
    """The newest live assignment per slot, for the visitor or the contact they are."""
    owner = SlotAssignment.visitor_id == visitor_id
    if contact_id is not None:
        owner = or_(owner, SlotAssignment.contact_id == contact_id)
    rows = await session.execute(
        select(
            SlotAssignment.slot,
            SlotAssignment.html,
            SlotAssignment.id,
            ContentVariant.key,
            ContentVariant.html.label("variant_html"),
        )
        .outerjoin(ContentVariant, ContentVariant.id == SlotAssignment.variant_id)
        .where(and_(owner, SlotAssignment.slot.in_(slots), SlotAssignment.expires_at > now))
        .order_by(SlotAssignment.created_at.desc(), SlotAssignment.id.desc())
    )
    chosen: dict[str, Chosen] = {}
    for row in rows:
        if row.slot in chosen:
            continue
        html = row.variant_html if row.key is not None else row.html
        if html:
            chosen[row.slot] = Chosen(
                html=html, variant=row.key or f"flow-{row.id}", source="assignment"
            )
    return chosen


def _first_touch(page: Mapping[str, Any], utm: Mapping[str, str]) -> dict[str, Any]:
    """Traits kept from the visitor's first visit: landing page, referrer, campaign."""
    traits: dict[str, Any] = {
        "landing_url": str(page.get("url") or "")[:500],
        "referrer": str(page.get("referrer") or "")[:500],
    }
    traits.update({key: utm[key][:200] for key in UTM_KEYS if utm.get(key)})
    return traits


async def touch(
    session: AsyncSession,
    visitor_id: str,
    site_id: int,
    now: datetime,
    *,
    page: Mapping[str, Any],
    utm: Mapping[str, str],
) -> Visitor | None:
    """The visitor row (created on first sight), seen now; None if another site owns it."""
    visitor = await session.get(Visitor, visitor_id)
    if visitor is None:
        try:
            async with session.begin_nested():
                visitor = Visitor(
                    id=visitor_id,
                    site_key_id=site_id,
                    traits=_first_touch(page, utm),
                    first_seen_at=now,
                    last_seen_at=now,
                )
                session.add(visitor)
            return visitor
        except IntegrityError:  # the same visitor's other tab got there first
            visitor = await session.get(Visitor, visitor_id, populate_existing=True)
            if visitor is None:
                raise
    if visitor.site_key_id not in (None, site_id):
        return None
    visitor.last_seen_at = now
    return visitor
