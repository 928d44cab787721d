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
from backend.auth.users import create_user, find_user
from backend.contacts.identify import record_consent
from backend.db import create_engine, create_sessionmaker, transaction
from backend.forms.definition import FormDefinition, FormField
from backend.forms.store import apply
from backend.lifecycle.demo import ensure_demo_board
from backend.models import Contact, Flow, Form, Role, User, utcnow
from backend.settings import Settings
from nodes.sdk.registry import discover
from runtime.flows import create_flow, publish, save_draft
from runtime.graph import InvalidGraph

DEMO_ADMIN_EMAIL = "admin@touchflow.local"
DEMO_SALES_EMAIL = "sales@touchflow.local"
DEMO_FLOW_NAME = "Whitepaper download: confirm, remind, call"
DEMO_FORM_SLUG = "lifecycle-guide"

_FIRST = ["Anna", "Erik", "Maja", "Lars", "Sara", "Johan", "Elin", "Karl", "Ida", "Nils"]
_LAST = ["Andersson", "Berg", "Lind", "Nyström", "Holm", "Ek", "Sjöberg", "Wallin"]
_CITIES = ["Stockholm", "Göteborg", "Malmö", "Uppsala", "Umeå", "Oslo", "Helsinki"]
_INTERESTS = ["analytics", "automation", "email", "ecommerce", "crm"]
_STAGES = ["subscriber", "lead", "customer"]


@dataclass
class DemoReport:
    lines: list[str] = field(default_factory=list)


def demo_graph(form_id: int | None = None) -> dict[str, Any]:
    """The canonical flow: form → confirmation with a download → reminder or call task."""
    download = "https://example.com/downloads/lifecycle-guide.pdf"
    return {
        "nodes": [
            _node(
                "form",
                "trigger.form_submitted",
                "Guide requested",
                {"form_id": form_id} if form_id else {},
                40,
                160,
            ),
            _node(
                "confirm",
                "action.email",
                "Send the guide",
                {
                    "subject": "Your lifecycle guide, {{ first_name }}",
                    "body": "Thanks for your interest! Here is the guide you asked for.",
                    "button_text": "Download the guide",
                    "button_url": download,
                    "category": "transactional",
                },
                280,
                160,
            ),
            _node(
                "opened",
                "wait.event",
                "Opened within 2 days?",
                {
                    "event_type": "email.opened",
                    "for_node": "confirm",
                    "timeout": {"amount": 2, "unit": "days"},
                },
                520,
                160,
            ),
            _node(
                "reminder",
                "action.email",
                "Reminder",
                {
                    "subject": "Did you get a chance to read the guide?",
                    "body": "Here is the link again, in case it got lost.",
                    "button_text": "Download the guide",
                    "button_url": download,
                },
                760,
                300,
            ),
            _node("later", "wait.duration", "Two days", {"amount": 2, "unit": "days"}, 760, 60),
            _node(
                "call",
                "action.task",
                "Call the lead",
                {
                    "title": "Call {{ first_name }} about the lifecycle guide",
                    "note": "They downloaded and opened the guide two days ago.",
                },
                1000,
                60,
            ),
        ],
        "edges": [
            {"source": "form", "port": "next", "target": "confirm"},
            {"source": "confirm", "port": "next", "target": "opened"},
            {"source": "opened", "port": "next", "target": "later"},
            {"source": "opened", "port": "timeout", "target": "reminder"},
            {"source": "later", "port": "next", "target": "call"},
        ],
        "settings": {"reentry": "once"},
    }


def _node(
    node_id: str, type_id: str, label: str, config: dict[str, Any], x: int, y: int
) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": type_id,
        "label": label,
        "config": config,
        "position": {"x": x, "y": y},
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


async def _ensure_form(
    db: AsyncSession, admin: User, settings: Settings, report: DemoReport
) -> int:
    """The form the demo flow starts from, on a hosted page anyone can try."""
    form = await db.scalar(select(Form).where(Form.slug == DEMO_FORM_SLUG))
    if form is None:
        form = Form(slug=DEMO_FORM_SLUG, created_by_id=admin.id)
        apply(
            form,
            FormDefinition(
                name="Get the lifecycle guide",
                fields=[
                    FormField(name="first_name", label="First name", target="first_name"),
                    FormField(
                        name="email", label="Email", type="email", required=True, target="email"
                    ),
                    FormField(name="city", label="City", target="attr:city"),
                ],
                consent_label="Send me the guide and occasional news by email.",
                consent_channel="email",
                success_message="Thanks! The guide is on its way to your inbox.",
            ),
        )
        db.add(form)
        await db.flush()
    report.lines.append(f"demo form: {settings.base_url}/f/{DEMO_FORM_SLUG}")
    return form.id


async def _ensure_flow(db: AsyncSession, admin: User, form_id: int, report: DemoReport) -> None:
    flow = await db.scalar(select(Flow).where(Flow.name == DEMO_FLOW_NAME))
    if flow is not None and flow.published_version_id is not None:
        report.lines.append(f"demo flow “{DEMO_FLOW_NAME}” is already there")
        return
    if flow is None:
        flow = await create_flow(
            db,
            DEMO_FLOW_NAME,
            graph=demo_graph(form_id),
            description="The canonical example: a form, a guide by email, a reminder, a call.",
            phase="attract",
            user_id=admin.id,
        )
    else:  # an earlier run could not publish it: try again with the current graph
        await save_draft(db, flow.id, demo_graph(form_id))
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
            form_id = await _ensure_form(db, admin, settings, report)
            await _ensure_flow(db, admin, form_id, report)
            report.lines.append(await ensure_demo_board(db, DEMO_FLOW_NAME))
    finally:
        await engine.dispose()
    return report
