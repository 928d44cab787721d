"""Building a plan in the database for the lifecycle tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backend.lifecycle.plan import add_process, ensure_workspace, load_plan
from backend.lifecycle.touchpoints import create_card
from backend.models import Flow, LifecycleProcess, Touchpoint, TouchpointLink


async def first_process(
    db: AsyncSession, name: str = "Konvertering från webben"
) -> LifecycleProcess:
    await ensure_workspace(db)
    plan = await load_plan(db)
    return await add_process(db, plan[0].phase.id, name)


async def card(
    db: AsyncSession, process_id: int, title: str, category: str, **values: Any
) -> Touchpoint:
    fields: dict[str, Any] = {
        "title": title,
        "category": category,
        "status": "idea",
        "priority": 2,
        "channels": [],
        "description": "",
        "decision": "",
        "owner": "",
        "audience_text": "",
        "audience_rule": None,
    }
    fields.update(values)
    return await create_card(db, process_id, fields)


async def flow(
    db: AsyncSession, name: str, status: str, graph: dict[str, Any] | None = None
) -> Flow:
    made = Flow(name=name, status=status, draft_graph=graph or {"nodes": [], "edges": []})
    db.add(made)
    await db.flush()
    return made


async def link(db: AsyncSession, touchpoint: Touchpoint, flow_row: Flow, node_id: str = "") -> None:
    db.add(TouchpointLink(touchpoint_id=touchpoint.id, flow_id=flow_row.id, node_id=node_id))
    await db.flush()
