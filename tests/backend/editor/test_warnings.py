"""The editor warns when a step can reach contacts it cannot serve: no owner, no consent."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Flow, Form, Role, User
from tests.backend.editor.conftest import Editor
from tests.backend.web.support import add_user

NO_OWNER = "Contacts from Whitepaper have no owner, so this task would be unassigned"
NO_CONSENT = "Whitepaper does not ask for email consent, so this marketing message"


async def _draw(editor: Editor, sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as db, db.begin():
        form = Form(name="Whitepaper", slug="whitepaper", consent_channel=None)
        db.add(form)
        await db.flush()
        flow = await db.get(Flow, editor.flow_id)
        assert flow is not None
        flow.draft_graph = {
            "nodes": [
                {"id": "form", "type": "trigger.form_submitted", "config": {"form_id": form.id}},
                {"id": "mail", "type": "action.email", "config": {"subject": "Hi", "body": "x"}},
                {"id": "call", "type": "action.task", "config": {"title": "Call"}},
                {
                    "id": "receipt",
                    "type": "action.email",
                    "config": {"subject": "Receipt", "body": "x", "category": "transactional"},
                },
            ],
            "edges": [
                {"source": "form", "port": "next", "target": "mail"},
                {"source": "mail", "port": "next", "target": "call"},
                {"source": "call", "port": "next", "target": "receipt"},
            ],
            "settings": {},
        }
        return form.id


async def test_task_without_owner_and_marketing_without_consent_are_flagged(
    editor: Editor, sessions: async_sessionmaker[AsyncSession]
) -> None:
    form_id = await _draw(editor, sessions)
    page = (await editor.client.get(editor.base)).text
    assert NO_OWNER in page and 'data-select-node="call"' in page
    assert NO_CONSENT in page and 'data-select-node="mail"' in page
    warnings = page.split('class="problem-list warning-list"')[1].split("</ul>")[0]
    assert 'data-select-node="receipt"' not in warnings  # transactional: no consent needed

    seller = await add_user(sessions, "sara@example.com", Role.marketer)
    async with sessions() as db, db.begin():
        form = await db.get(Form, form_id)
        assert form is not None and await db.get(User, seller.id) is not None
        form.owner_id, form.consent_channel, form.consent_label = seller.id, "email", "Yes"
    page = (await editor.client.get(editor.base)).text
    assert NO_OWNER not in page and NO_CONSENT not in page


async def test_the_flows_routing_takes_the_tasks_any_trigger_may_bring_without_owner(
    editor: Editor, sessions: async_sessionmaker[AsyncSession]
) -> None:
    form_id = await _draw(editor, sessions)
    seller = await add_user(sessions, "sara@example.com", Role.marketer)
    async with sessions() as db, db.begin():
        form = await db.get(Form, form_id)
        flow = await db.get(Flow, editor.flow_id)
        assert form is not None and flow is not None
        form.owner_id = seller.id
        signup = {"id": "signup", "type": "trigger.event", "config": {"event_type": "signup"}}
        flow.draft_graph = {
            **flow.draft_graph,
            "nodes": [*flow.draft_graph["nodes"], signup],
            "edges": [
                *flow.draft_graph["edges"],
                {"source": "signup", "port": "next", "target": "call"},
            ],
        }
    page = (await editor.client.get(editor.base)).text
    assert "Contacts who enter through signup may have no owner" in page

    async with sessions() as db, db.begin():
        flow = await db.get(Flow, editor.flow_id)
        assert flow is not None
        flow.owner_id = seller.id
    page = (await editor.client.get(editor.base)).text
    assert "may have no owner" not in page and NO_OWNER not in page
