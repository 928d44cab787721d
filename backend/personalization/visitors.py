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

from sqlalchemy import Table, and_, bindparam, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from backend.models import ContentVariant, SlotAssignment, Visitor
from backend.personalization.decide import UTM_KEYS, Chosen

__all__ = ["Known", "touch", "visitor_state"]


@dataclass(frozen=True)
class Known:
    """What a request may know about its visitor: whether it exists, and its contact."""

    exists: bool
    contact_id: int | None = None


_VISITORS: Table = Visitor.__table__  # type: ignore[assignment]
_ASSIGNMENTS: Table = SlotAssignment.__table__  # type: ignore[assignment]
_VARIANTS: Table = ContentVariant.__table__  # type: ignore[assignment]


def _state_query() -> Any:
    """Built once: the visitor by primary key, joined to its live assignments' content."""
    v, a, cv = _VISITORS, _ASSIGNMENTS, _VARIANTS
    owned = or_(a.c.visitor_id == v.c.id, a.c.contact_id == v.c.contact_id)
    live = and_(
        owned,
        a.c.slot.in_(bindparam("slots", expanding=True)),
        a.c.expires_at > bindparam("now", type_=a.c.expires_at.type),
    )
    return (
        select(
            v.c.contact_id,
            v.c.site_key_id,
            a.c.slot,
            a.c.html,
            a.c.id,
            cv.c.key,
            cv.c.html.label("variant_html"),
        )
        .select_from(v.outerjoin(a, live).outerjoin(cv, cv.c.id == a.c.variant_id))
        .where(v.c.id == bindparam("vid", type_=v.c.id.type))
        .order_by(a.c.created_at.desc(), a.c.id.desc())
    )


_STATE = _state_query()


async def visitor_state(
    conn: AsyncConnection,
    visitor_id: str,
    site_id: int,
    slots: Sequence[str],
    now: datetime,
) -> tuple[Known, dict[str, Chosen]]:
    """The visitor, and the newest live assignment per slot for it or its contact.

    One indexed query, the decision endpoint's only database work.
    """
    rows = (await conn.execute(_STATE, {"vid": visitor_id, "slots": list(slots), "now": now})).all()
    if not rows or rows[0].site_key_id not in (None, site_id):
        return Known(exists=False), {}
    chosen: dict[str, Chosen] = {}
    for row in rows:
        if row.slot is None or row.slot in chosen:
            continue
        html = row.variant_html if row.key is not None else row.html
        if html:
            chosen[row.slot] = Chosen(
                html=html, variant=row.key or f"flow-{row.id}", source="assignment"
            )
    return Known(exists=True, contact_id=rows[0].contact_id), chosen


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
