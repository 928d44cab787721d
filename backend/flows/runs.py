"""Journeys and their steps, for the Runs pages."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import Contact, Flow, FlowVersion, Journey, Step
from backend.paging import Page


@dataclass(frozen=True)
class JourneyRow:
    journey: Journey
    flow_name: str
    customer: str
    node_label: str


async def node_labels(db: AsyncSession, version_ids: set[int]) -> dict[tuple[int, str], str]:
    """``(version id, node id) -> the label the marketer gave the node`` (labelled nodes only)."""
    if not version_ids:
        return {}
    rows = await db.execute(
        select(FlowVersion.id, FlowVersion.graph).where(FlowVersion.id.in_(version_ids))
    )
    return {
        (version_id, node["id"]): node["label"]
        for version_id, graph in rows
        for node in graph.get("nodes", [])
        if node.get("label")
    }


async def list_journeys(
    db: AsyncSession, status: str | None, page: Page, flow_id: int | None = None
) -> tuple[list[JourneyRow], int]:
    """Newest journeys first, optionally only those with ``status`` or in one flow."""
    stmt = (
        select(Journey, Flow.name, Contact.email, Contact.first_name, Contact.last_name)
        .join(Flow, Flow.id == Journey.flow_id)
        .outerjoin(Contact, Contact.id == Journey.contact_id)
    )
    if status:
        stmt = stmt.where(Journey.status == status)
    if flow_id is not None:
        stmt = stmt.where(Journey.flow_id == flow_id)
    total = await db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = await db.execute(
        stmt.order_by(Journey.updated_at.desc(), Journey.id.desc())
        .limit(page.size)
        .offset(page.offset)
    )
    found = rows.all()
    labels = await node_labels(db, {row[0].flow_version_id for row in found})
    result = []
    for journey, flow_name, email, first, last in found:
        name = f"{first or ''} {last or ''}".strip()
        customer = email or name or (f"visitor {journey.visitor_id}" if journey.visitor_id else "")
        label = labels.get((journey.flow_version_id, journey.node_id), journey.node_id)
        result.append(JourneyRow(journey, flow_name, customer, label))
    return result, total


async def journey_steps(db: AsyncSession, journey_id: int) -> list[Step]:
    rows = await db.scalars(
        select(Step).where(Step.journey_id == journey_id).order_by(Step.started_at, Step.id)
    )
    return list(rows)
