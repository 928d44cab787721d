"""Who takes the follow-ups: the people a flow or a form deals its work out to.

A flow has a fallback owner and a round-robin; a form has an owner and a
round-robin for the contacts it creates. The turns themselves are taken in
``runtime.routing``; this module reads and saves the choice made on the pages.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import Role, RoutingMember, User
from backend.validation import DB_INT_MAX
from backend.web.posted import Posted

MEMBER_FIELD = "round_robin-%d"
_MEMBER = re.compile(r"round_robin-(\d{1,18})")


async def assignable_users(db: AsyncSession) -> list[Any]:
    """Active users who can take tasks (everyone but viewers), by name."""
    return list(
        (
            await db.execute(
                select(User.id, User.name, User.email)
                .where(User.is_active, User.role != Role.viewer.value)
                .order_by(User.name, User.email)
            )
        ).all()
    )


def _scope(flow_id: int | None, form_id: int | None) -> Any:
    return (
        RoutingMember.flow_id == flow_id
        if flow_id is not None
        else RoutingMember.form_id == form_id
    )


async def members_of(
    db: AsyncSession, *, flow_id: int | None = None, form_id: int | None = None
) -> list[int]:
    """The user ids in the flow's (or form's) round-robin."""
    return list(
        await db.scalars(
            select(RoutingMember.user_id).where(_scope(flow_id, form_id)).order_by(RoutingMember.id)
        )
    )


async def chosen_owner(db: AsyncSession, posted: str) -> int | None:
    """The chosen owner if that user exists, is active and can take tasks."""
    if not posted.strip().isdigit() or int(posted) > DB_INT_MAX:
        return None
    user = await db.get(User, int(posted))
    ok = user is not None and user.is_active and user.role != Role.viewer.value
    return user.id if ok and user is not None else None


def ticked_members(posted: Posted) -> list[int]:
    """The ids ticked as posted, to show the form again as it was typed."""
    found = (_MEMBER.fullmatch(key) for key, value in posted.values.items() if value)
    return [int(match[1]) for match in found if match]


def chosen_members(posted: Posted, users: list[Any]) -> list[int]:
    """The ids ticked among ``users`` (anything else posted is ignored)."""
    return [u.id for u in users if posted.get(MEMBER_FIELD % u.id)]


async def set_members(
    db: AsyncSession,
    chosen: list[int],
    *,
    flow_id: int | None = None,
    form_id: int | None = None,
) -> bool:
    """Make the round-robin exactly ``chosen``; True when it changed.

    Newcomers start at the fewest assignments any stayer has, so they join the
    rotation instead of taking every task until they have caught up.
    """
    scope = _scope(flow_id, form_id)
    current = set(await members_of(db, flow_id=flow_id, form_id=form_id))
    wanted = set(chosen)
    if current == wanted:
        return False
    gone = current - wanted
    if gone:
        await db.execute(delete(RoutingMember).where(scope, RoutingMember.user_id.in_(gone)))
    start = await db.scalar(select(func.min(RoutingMember.assigned)).where(scope)) or 0
    new = sorted(wanted - current)
    if new:
        await db.execute(
            insert(RoutingMember),
            [
                {"flow_id": flow_id, "form_id": form_id, "user_id": user, "assigned": start}
                for user in new
            ],
        )
    return True
