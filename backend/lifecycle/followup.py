"""Live follow-up on each card: what its linked flows and nodes did in the last 30 days.

Read from the run history (``steps`` joined to ``journeys``): customers reached
through a linked node (a link to a whole flow counts its entries), goal
conversions of those journeys, and failed steps. An automated card gets a
warning when a linked flow is paused or not live, nothing passed in 30 days,
or steps failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from backend.i18n import _
from backend.models import (
    Flow,
    FlowStatus,
    Journey,
    Step,
    StepStatus,
    Touchpoint,
    TouchpointLink,
    TouchpointStatus,
)

WINDOW = timedelta(days=30)
GOAL_TYPE = "goal.conversion"


@dataclass
class LinkView:
    link: TouchpointLink
    flow_name: str
    flow_status: str


@dataclass
class FollowUp:
    links: list[LinkView] = field(default_factory=list)
    reached: int = 0
    conversions: int = 0
    failures: int = 0
    warnings: list[str] = field(default_factory=list)


def _link_filter(links: Sequence[TouchpointLink]) -> ColumnElement[bool]:
    clauses = []
    for link in links:
        if link.node_id:
            clauses.append(and_(Journey.flow_id == link.flow_id, Step.node_id == link.node_id))
        else:
            clauses.append(Journey.flow_id == link.flow_id)
    return or_(*clauses)


async def follow_up(
    db: AsyncSession, cards: Sequence[Touchpoint], now: datetime
) -> dict[int, FollowUp]:
    """Follow-up of every card, keyed by card id."""
    ids = [card.id for card in cards]
    result = {card_id: FollowUp() for card_id in ids}
    if not ids:
        return result
    rows = await db.execute(
        select(TouchpointLink, Flow.name, Flow.status)
        .join(Flow, Flow.id == TouchpointLink.flow_id)
        .where(TouchpointLink.touchpoint_id.in_(ids))
        .order_by(TouchpointLink.id)
    )
    for link, name, status in rows:
        result[link.touchpoint_id].links.append(LinkView(link, name, status))
    since = now - WINDOW
    for card in cards:
        info = result[card.id]
        links = [view.link for view in info.links]
        if links:
            await _count(db, info, links, since)
        if card.status == TouchpointStatus.automated.value:
            info.warnings = _warnings(info)
    return result


async def _count(
    db: AsyncSession, info: FollowUp, links: Sequence[TouchpointLink], since: datetime
) -> None:
    passed = (
        select(Journey.id)
        .join(Step, Step.journey_id == Journey.id)
        .where(_link_filter(links), Step.started_at >= since)
    )
    # A contact or an anonymous visitor counts once, however many journeys they made.
    customers = (
        select(Journey.contact_id, Journey.visitor_id)
        .where(Journey.id.in_(passed))
        .distinct()
        .subquery()
    )
    info.reached = int(await db.scalar(select(func.count()).select_from(customers)) or 0)
    info.conversions = int(
        await db.scalar(
            select(func.count(func.distinct(Step.journey_id))).where(
                Step.journey_id.in_(passed), Step.node_type == GOAL_TYPE, Step.started_at >= since
            )
        )
        or 0
    )
    info.failures = int(
        await db.scalar(
            select(func.count())
            .select_from(Step)
            .join(Journey, Journey.id == Step.journey_id)
            .where(
                _link_filter(links), Step.status == StepStatus.error.value, Step.started_at >= since
            )
        )
        or 0
    )


def _warnings(info: FollowUp) -> list[str]:
    if not info.links:
        return [_("Marked automated, but linked to no flow.")]
    warnings = []
    for view in info.links:
        if view.flow_status == FlowStatus.paused.value:
            warnings.append(_("The flow “%(name)s” is paused.") % {"name": view.flow_name})
        elif view.flow_status != FlowStatus.active.value:
            warnings.append(_("The flow “%(name)s” is not live.") % {"name": view.flow_name})
    if info.reached == 0:
        warnings.append(_("No customer reached in the last 30 days."))
    if info.failures:
        warnings.append(_("%(num)d failed steps in the last 30 days.") % {"num": info.failures})
    return warnings
