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

from backend.models import ContentBlock, ContentVariant, SlotAssignment, Visitor
from backend.personalization.decide import UTM_KEYS, Chosen

__all__ = [
    "STATE_PARAMS",
    "STATE_SQL",
    "Assignment",
    "VisitorState",
    "read_visitor",
    "touch",
    "visitor_state",
]


@dataclass(frozen=True)
class Assignment:
    """A live assignment's content for one slot, and until when it is live."""

    slot: str
    expires_at: datetime
    content: Chosen


@dataclass(frozen=True)
class VisitorState:
    """The visitor as one read found it: its row and its assignments, newest first."""

    exists: bool
    site_key_id: int | None = None
    contact_id: int | None = None  # verified
    claimed_contact_id: int | None = None  # the browser's unverified claim
    forgotten: bool = False  # its contact was erased: the id must not be used again
    assignments: tuple[Assignment, ...] = ()

    def belongs_to(self, site_id: int) -> bool:
        """Whether a request through site key ``site_id`` may see this visitor."""
        return self.exists and self.site_key_id in (None, site_id)

    def assigned(self, slots: Sequence[str], now: datetime) -> dict[str, Chosen]:
        """The newest assignment per slot in ``slots`` still live at ``now``."""
        wanted = set(slots)
        chosen: dict[str, Chosen] = {}
        for assignment in self.assignments:
            slot = assignment.slot
            if slot in wanted and slot not in chosen and assignment.expires_at > now:
                chosen[slot] = assignment.content
        return chosen


_VISITORS: Table = Visitor.__table__  # type: ignore[assignment]
_ASSIGNMENTS: Table = SlotAssignment.__table__  # type: ignore[assignment]
_VARIANTS: Table = ContentVariant.__table__  # type: ignore[assignment]
_BLOCKS: Table = ContentBlock.__table__  # type: ignore[assignment]


def _state_query() -> Any:
    """Built once: the visitor by primary key, joined to its live assignments' content.

    Every slot's assignments are read (a visitor has few), so the statement has no
    expanding parameter: SQLAlchemy reuses its compiled form, and the state can be
    cached for any set of slots.
    """
    v, a, cv, cb = _VISITORS, _ASSIGNMENTS, _VARIANTS, _BLOCKS
    # A claim sees only its contact's assignments of blocks marked safe to show on a claim.
    safe = select(cv.c.id).join(cb, cb.c.id == cv.c.block_id).where(cb.c.show_on_claim.is_(True))
    owned = or_(
        a.c.visitor_id == v.c.id,
        a.c.contact_id == v.c.contact_id,
        and_(a.c.contact_id == v.c.claimed_contact_id, a.c.variant_id.in_(safe)),
    )
    live = and_(owned, a.c.expires_at > bindparam("now", type_=a.c.expires_at.type))
    return (
        select(
            v.c.contact_id,
            v.c.site_key_id,
            v.c.claimed_contact_id,
            v.c.forgotten_at,
            a.c.slot,
            a.c.html,
            a.c.id,
            a.c.expires_at,
            cv.c.key,
            cv.c.html.label("variant_html"),
        )
        .select_from(v.outerjoin(a, live).outerjoin(cv, cv.c.id == a.c.variant_id))
        .where(v.c.id == bindparam("vid", type_=v.c.id.type))
        .order_by(a.c.created_at.desc(), a.c.id.desc())
    )


_STATE = _state_query()


# Column positions in ``_STATE``'s rows (SQLAlchemy rows and asyncpg records alike).
_CONTACT, _SITE, _CLAIMED, _FORGOTTEN, _SLOT, _HTML, _ID, _EXPIRES, _KEY, _VARIANT_HTML = range(10)


def _compiled_for_asyncpg() -> tuple[str, tuple[str, ...]]:
    """``_STATE`` as PostgreSQL SQL with ``$n`` parameters, and their names in order."""
    from sqlalchemy.dialects.postgresql.asyncpg import dialect

    compiled = _STATE.compile(dialect=dialect())  # type: ignore[no-untyped-call]
    return str(compiled), tuple(compiled.positiontup or ())


STATE_SQL, STATE_PARAMS = _compiled_for_asyncpg()


def visitor_state(rows: Sequence[Sequence[Any]]) -> VisitorState:
    """The state from ``_STATE``'s rows (none: an unknown visitor)."""
    if not rows:
        return VisitorState(exists=False)
    assignments = []
    for row in rows:
        html = row[_VARIANT_HTML] if row[_KEY] is not None else row[_HTML]
        if row[_SLOT] is None or not html:
            continue
        variant = row[_KEY] or f"flow-{row[_ID]}"
        content = Chosen(html=html, variant=variant, source="assignment")
        assignments.append(Assignment(row[_SLOT], row[_EXPIRES], content))
    first = rows[0]
    return VisitorState(
        exists=True,
        site_key_id=first[_SITE],
        contact_id=first[_CONTACT],
        claimed_contact_id=first[_CLAIMED],
        forgotten=first[_FORGOTTEN] is not None,
        assignments=tuple(assignments),
    )


async def read_visitor(conn: AsyncConnection, visitor_id: str, now: datetime) -> VisitorState:
    """The visitor and its (or its contact's) assignments live at ``now``, newest first.

    One indexed query, the decision endpoint's only database work (PostgreSQL
    runs the same statement straight on asyncpg: see ``cache.Personalizer``).
    """
    rows = (await conn.execute(_STATE, {"vid": visitor_id, "now": now})).all()
    return visitor_state(rows)


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
