"""Task routing: whose turn it is among a flow's or a form's round-robin, and a flow's fallback.

Fair under concurrency: the members' rows are locked (``FOR UPDATE`` on
PostgreSQL, in a consistent order so two callers never deadlock) before the
one with the fewest assignments is chosen and counted, so two workers
assigning at once each see the other's count: nobody is skipped or given two
in a row. SQLite has one writer at a time, which gives the same guarantee.
"""

from __future__ import annotations

from sqlalchemy import Table, column, select, table, update
from sqlalchemy.ext.asyncio import AsyncSession

from runtime.models import RoutingMember
from runtime.sql import CONTACTS, FLOWS, JOURNEYS

__all__ = ["MEMBERS", "flow_owner", "next_member", "owner_for_journey"]

MEMBERS: Table = RoutingMember.__table__  # type: ignore[assignment]
# The web app's users table: only who is still active matters here.
_USERS = table("users", column("id"), column("is_active"))


async def next_member(
    session: AsyncSession, *, flow_id: int | None = None, form_id: int | None = None
) -> int | None:
    """The active member of the flow's (or form's) round-robin whose turn it is, counted
    as assigned; None when it has no active members."""
    scope = MEMBERS.c.flow_id == flow_id if flow_id is not None else MEMBERS.c.form_id == form_id
    rows = (
        await session.execute(
            select(MEMBERS.c.id, MEMBERS.c.user_id, MEMBERS.c.assigned)
            .join(_USERS, _USERS.c.id == MEMBERS.c.user_id)
            .where(scope, _USERS.c.is_active.is_(True))
            .order_by(MEMBERS.c.id)
            .with_for_update(of=MEMBERS)
        )
    ).all()
    if not rows:
        return None
    chosen = min(rows, key=lambda row: (row.assigned, row.id))
    await session.execute(
        update(MEMBERS).where(MEMBERS.c.id == chosen.id).values(assigned=MEMBERS.c.assigned + 1)
    )
    return int(chosen.user_id)


async def flow_owner(session: AsyncSession, flow_id: int) -> int | None:
    """Who takes the flow's ownerless work: the next of its round-robin, else its owner."""
    member = await next_member(session, flow_id=flow_id)
    if member is not None:
        return member
    owner = await session.scalar(
        select(FLOWS.c.owner_id)
        .join(_USERS, _USERS.c.id == FLOWS.c.owner_id)
        .where(FLOWS.c.id == flow_id, _USERS.c.is_active.is_(True))
    )
    return int(owner) if owner is not None else None


async def owner_for_journey(
    session: AsyncSession, journey_id: int, contact_id: int | None
) -> int | None:
    """The owner of a task for a journey's contact who has none: the flow's routing.

    The contact keeps that owner, so their next tasks go to the same person.
    """
    flow_id = await session.scalar(select(JOURNEYS.c.flow_id).where(JOURNEYS.c.id == journey_id))
    if flow_id is None:
        return None
    if contact_id is not None:
        # Another step may have given the contact an owner since this task was queued.
        current = await session.scalar(
            select(CONTACTS.c.owner_id).where(CONTACTS.c.id == contact_id)
        )
        if current is not None:
            return int(current)
    owner = await flow_owner(session, int(flow_id))
    if owner is not None and contact_id is not None:
        await session.execute(
            update(CONTACTS)
            .where(CONTACTS.c.id == contact_id, CONTACTS.c.owner_id.is_(None))
            .values(owner_id=owner)
        )
    return owner
