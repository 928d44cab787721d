"""The demo's board: "Conversion from the web", its touchpoints linked to the demo flow's nodes.

A few customer touchpoints are deliberately left unmet, so the gap analysis
has something to show. Loading it again leaves an existing board alone.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.lifecycle.plan import add_process, ensure_workspace, load_plan
from backend.lifecycle.touchpoints import create_card
from backend.models import Flow, LifecycleProcess, TouchpointLink

DEMO_PROCESS = "Conversion from the web"

# (key, title, category, status, priority, channels, answers key, linked node, decision)
_CARDS: list[tuple[str, str, str, str, int, list[str], str, str, str]] = [
    (
        "want_guide",
        "Get the guide right after asking",
        "customer",
        "planned",
        1,
        ["email"],
        "",
        "",
        "",
    ),
    (
        "want_reminder",
        "A nudge if I forget to read it",
        "customer",
        "planned",
        2,
        ["email"],
        "",
        "",
        "",
    ),
    (
        "want_answers",
        "Someone to answer my questions",
        "customer",
        "planned",
        1,
        ["phone"],
        "",
        "",
        "",
    ),
    ("want_price", "Prices before I talk to sales", "customer", "idea", 2, ["web"], "", "", ""),
    (
        "want_sms",
        "A text when my trial account is ready",
        "customer",
        "idea",
        3,
        ["sms"],
        "",
        "",
        "",
    ),
    (
        "send_guide",
        "Send the guide",
        "company",
        "automated",
        1,
        ["email"],
        "want_guide",
        "confirm",
        "Every download is a lead: answer within the minute or lose it.",
    ),
    (
        "reminder",
        "Reminder",
        "company",
        "automated",
        2,
        ["email"],
        "want_reminder",
        "reminder",
        "Half the guides are never opened; one reminder is enough.",
    ),
    (
        "call",
        "Salesperson calls the lead",
        "today",
        "automated",
        1,
        ["phone"],
        "want_answers",
        "call",
        "Sales asked for warm leads only: those who opened the guide.",
    ),
    (
        "newsletter",
        "Monthly newsletter",
        "company",
        "manual",
        3,
        ["email"],
        "",
        "",
        "Sent by hand today; could be a flow.",
    ),
    ("webinar", "Webinar invitation", "company", "idea", 3, ["email", "event"], "", "", ""),
]


async def ensure_demo_board(db: AsyncSession, flow_name: str) -> str:
    """Create the board once; returns a line for the demo's report."""
    await ensure_workspace(db)
    existing = await db.scalar(
        select(LifecycleProcess).where(LifecycleProcess.name == DEMO_PROCESS)
    )
    if existing is not None:
        return f"demo board “{DEMO_PROCESS}” is already there"
    plan = await load_plan(db)
    process = await add_process(db, plan[0].phase.id, DEMO_PROCESS)
    flow = await db.scalar(select(Flow).where(Flow.name == flow_name))
    if flow is not None:
        flow.process_id = process.id
    made: dict[str, Any] = {}
    for key, title, category, status, priority, channels, answers, node, decision in _CARDS:
        card = await create_card(
            db,
            process.id,
            {
                "title": title,
                "description": "",
                "category": category,
                "status": status,
                "priority": priority,
                "channels": channels,
                "decision": decision,
                "owner": "Sam Sales" if category == "today" else "Marketing",
                "audience_text": "Visitors who download the lifecycle guide",
                "audience_rule": None,
                "answers_id": made[answers].id if answers else None,
            },
        )
        made[key] = card
        if node and flow is not None:
            db.add(TouchpointLink(touchpoint_id=card.id, flow_id=flow.id, node_id=node))
    await db.flush()
    return f"demo board “{DEMO_PROCESS}”: {len(_CARDS)} touchpoints, linked to the demo flow"
