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

from sqlalchemy import and_, func, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

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


async def follow_up(
    db: AsyncSession, cards: Sequence[Touchpoint], now: datetime
) -> dict[int, FollowUp]:
    """Follow-up of every card, keyed by card id: four queries however many cards."""
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
    await _count(db, result, ids, now - WINDOW)
    for card in cards:
        if card.status == TouchpointStatus.automated.value:
            result[card.id].warnings = _warnings(result[card.id])
    return result


async def _count(
    db: AsyncSession, result: dict[int, FollowUp], ids: list[int], since: datetime
) -> None:
    # Every step run in the window on a linked node, or on any node of a flow linked whole.
    # A node link starts from the node's steps (ix_steps_node_started), never from every
    # journey of the flow: a board of many cards on one busy flow stays linear.
    columns = (
        TouchpointLink.touchpoint_id.label("card"),
        Journey.id.label("journey"),
        Journey.contact_id.label("contact"),
        Journey.visitor_id.label("visitor"),
        Step.id.label("step"),
        Step.status.label("status"),
    )
    by_node = (
        select(*columns)
        .select_from(TouchpointLink)
        .join(Step, and_(Step.node_id == TouchpointLink.node_id, Step.started_at >= since))
        .join(
            Journey, and_(Journey.id == Step.journey_id, Journey.flow_id == TouchpointLink.flow_id)
        )
        .where(TouchpointLink.touchpoint_id.in_(ids), TouchpointLink.node_id != "")
    )
    by_flow = (
        select(*columns)
        .select_from(TouchpointLink)
        .join(Journey, Journey.flow_id == TouchpointLink.flow_id)
        .join(Step, and_(Step.journey_id == Journey.id, Step.started_at >= since))
        .where(TouchpointLink.touchpoint_id.in_(ids), TouchpointLink.node_id == "")
    )
    hits = union_all(by_node, by_flow).subquery()
    # A contact or an anonymous visitor counts once, however many journeys they made.
    customers = select(hits.c.card, hits.c.contact, hits.c.visitor).distinct().subquery()
    for card, count in await db.execute(
        select(customers.c.card, func.count()).group_by(customers.c.card)
    ):
        result[card].reached = int(count)
    failed = (
        select(hits.c.card, hits.c.step)
        .where(hits.c.status == StepStatus.error.value)
        .distinct()
        .subquery()
    )
    for card, count in await db.execute(
        select(failed.c.card, func.count()).group_by(failed.c.card)
    ):
        result[card].failures = int(count)
    passed = select(hits.c.card, hits.c.journey).distinct().subquery()
    goal = aliased(Step)
    for card, count in await db.execute(
        select(passed.c.card, func.count(func.distinct(goal.journey_id)))
        .join(goal, goal.journey_id == passed.c.journey)
        .where(goal.node_type == GOAL_TYPE, goal.started_at >= since)
        .group_by(passed.c.card)
    ):
        result[card].conversions = int(count)


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
