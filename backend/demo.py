"""``touchflow demo``: a demo admin, sample contacts and the canonical flow, idempotently.

Running it again keeps what is there (contacts are matched by external id and
the flow by name) and gives the demo admin a fresh password, so the printed
sign-in always works.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.auth.passwords import hash_password_async
from backend.contacts.service import record_consent
from backend.db import create_engine, create_sessionmaker, transaction
from backend.models import Contact, Flow, Role, User, utcnow
from backend.services.users import create_user, find_user
from backend.settings import Settings
from nodes.sdk.registry import discover
from runtime.flows import create_flow, publish, save_draft
from runtime.graph import InvalidGraph

DEMO_ADMIN_EMAIL = "admin@touchflow.local"
DEMO_SALES_EMAIL = "sales@touchflow.local"
DEMO_FLOW_NAME = "Whitepaper download: confirm, remind, call"

_FIRST = ["Anna", "Erik", "Maja", "Lars", "Sara", "Johan", "Elin", "Karl", "Ida", "Nils"]
_LAST = ["Andersson", "Berg", "Lind", "Nyström", "Holm", "Ek", "Sjöberg", "Wallin"]
_CITIES = ["Stockholm", "Göteborg", "Malmö", "Uppsala", "Umeå", "Oslo", "Helsinki"]
_INTERESTS = ["analytics", "automation", "email", "ecommerce", "crm"]
_STAGES = ["subscriber", "lead", "customer"]


@dataclass
class DemoReport:
    lines: list[str] = field(default_factory=list)


def demo_graph() -> dict[str, Any]:
    """The canonical flow: form → confirmation with a download → reminder or call task."""
    download = "https://example.com/downloads/lifecycle-guide.pdf"
    return {
        "nodes": [
            {
                "id": "form",
                "type": "trigger.form_submitted",
                "label": "Guide requested",
                "config": {},
                "position": {"x": 40, "y": 160},
            },
            {
                "id": "confirm",
                "type": "action.email",
                "label": "Send the guide",
                "config": {
                    "subject": "Your lifecycle guide, {{ contact.first_name | default('there') }}",
                    "body": f"Thanks for your interest! Download the guide: {download}",
                    "transactional": True,
                },
                "position": {"x": 280, "y": 160},
            },
            {
                "id": "opened",
                "type": "wait.event",
                "label": "Opened within 2 days?",
                "config": {"event_type": "email.opened", "from_node": "confirm", "days": 2},
                "position": {"x": 520, "y": 160},
            },
            {
                "id": "reminder",
                "type": "action.email",
                "label": "Reminder",
                "config": {
                    "subject": "Did you get a chance to read the guide?",
                    "body": f"Here is the link again: {download}",
                },
                "position": {"x": 760, "y": 300},
            },
            {
                "id": "pause",
                "type": "wait.duration",
                "label": "Two days",
                "config": {"days": 2},
                "position": {"x": 760, "y": 60},
            },
            {
                "id": "call",
                "type": "action.task",
                "label": "Call the lead",
                "config": {"title": "Call about the lifecycle guide", "due_in_days": 1},
                "position": {"x": 1000, "y": 60},
            },
        ],
        "edges": [
            {"source": "form", "port": "next", "target": "confirm"},
            {"source": "confirm", "port": "next", "target": "opened"},
            {"source": "opened", "port": "next", "target": "pause"},
            {"source": "opened", "port": "timeout", "target": "reminder"},
            {"source": "pause", "port": "next", "target": "call"},
        ],
        "settings": {"reentry": "once"},
    }


async def _ensure_user(db: AsyncSession, email: str, password: str, role: Role, name: str) -> User:
    user = await find_user(db, email)
    if user is None:
        return await create_user(db, email, password, role, name)
    user.password_hash = await hash_password_async(password)
    user.is_active = True
    return user


async def _add_contacts(db: AsyncSession, count: int, owner: User) -> int:
    existing = set(
        await db.scalars(select(Contact.external_id).where(Contact.external_id.like("demo-%")))
    )
    rng = random.Random(20261123)  # the same sample every time
    added: list[Contact] = []
    for n in range(1, count + 1):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        city, interest, stage = rng.choice(_CITIES), rng.choice(_INTERESTS), rng.choice(_STAGES)
        age = rng.randint(19, 72)
        external_id = f"demo-{n}"
        if external_id in existing:
            continue
        contact = Contact(
            external_id=external_id,
            email=f"{first}.{last}.{n}@example.com".lower(),
            first_name=first,
            last_name=last,
            attributes={"city": city, "age": age, "interest": interest},
            tags=[interest],
            lifecycle_stage=stage,
            consent={},
            owner_id=owner.id,
        )
        db.add(contact)
        added.append(contact)
    await db.flush()
    now = utcnow()
    for contact in added:
        record_consent(db, contact, "email", True, "demo", now)
    return len(added)


async def _ensure_flow(db: AsyncSession, admin: User, report: DemoReport) -> None:
    flow = await db.scalar(select(Flow).where(Flow.name == DEMO_FLOW_NAME))
    if flow is not None and flow.published_version_id is not None:
        report.lines.append(f"demo flow “{DEMO_FLOW_NAME}” is already there")
        return
    if flow is None:
        flow = await create_flow(
            db,
            DEMO_FLOW_NAME,
            graph=demo_graph(),
            description="The canonical example: a form, a guide by email, a reminder, a call.",
            phase="attract",
            user_id=admin.id,
        )
    else:  # an earlier run could not publish it: try again with the current graph
        await save_draft(db, flow.id, demo_graph())
    try:
        async with db.begin_nested():
            await publish(db, flow.id, discover(), admin.id, note="demo")
    except InvalidGraph as exc:
        report.lines.append(f"demo flow saved as a draft; it does not validate yet: {exc}")
        return
    report.lines.append(f"published demo flow “{DEMO_FLOW_NAME}”")


async def load_demo(settings: Settings, *, admin_password: str, contacts: int) -> DemoReport:
    """Create or refresh the demo data in the configured database."""
    report = DemoReport()
    engine = create_engine(settings.database_url)
    try:
        async with transaction(create_sessionmaker(engine)) as db:
            admin = await _ensure_user(db, DEMO_ADMIN_EMAIL, admin_password, Role.admin, "Admin")
            sales = await _ensure_user(
                db, DEMO_SALES_EMAIL, admin_password, Role.marketer, "Sam Sales"
            )
            added = await _add_contacts(db, contacts, sales)
            report.lines.append(f"added {added} sample contacts")
            await _ensure_flow(db, admin, report)
    finally:
        await engine.dispose()
    return report
