"""Config fields that refer to something are pickers of names, with the id kept underneath."""

from __future__ import annotations

import re

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import ContentBlock, Form
from tests.backend.editor.conftest import Editor


def _options(html: str, field: str) -> list[tuple[str, str]]:
    select = re.search(rf'<select id="cfg-{field}"[^>]*class="picker".*?</select>', html, re.S)
    assert select, f"{field} is not a picker"
    return re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select.group(0))


async def _add(editor: Editor, type_id: str, x: int = 0) -> str:
    response = await editor.post("/nodes", {"type": type_id, "x": x, "y": 0})
    assert response.status_code == 200, response.text
    return str((await editor.flow()).draft_graph["nodes"][-1]["id"])


async def test_form_trigger_picks_a_form_by_name(
    editor: Editor, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as db, db.begin():
        db.add_all(
            [
                Form(name="Whitepaper download", slug="whitepaper"),
                Form(name="Åsa's webinar", slug="webinar"),
            ]
        )
    node = await _add(editor, "trigger.form_submitted")
    panel = (await editor.get(f"/nodes/{node}")).text
    options = _options(panel, "form_id")
    assert ("", "(none)") in options  # any form
    assert ("1", "Whitepaper download (#1)") in options
    assert ("2", "Åsa&#39;s webinar (#2)") in options

    saved = await editor.post(f"/nodes/{node}/config", {"cfg.form_id": "2", "node_label": ""})
    assert saved.status_code == 200, saved.text
    assert (await editor.flow()).draft_graph["nodes"][0]["config"]["form_id"] == 2
    assert "Id: <code>2</code>" in saved.text


async def test_a_deleted_form_stays_chosen_and_says_so(
    editor: Editor, sessions: async_sessionmaker[AsyncSession]
) -> None:
    node = await _add(editor, "trigger.form_submitted")
    await editor.post(f"/nodes/{node}/config", {"cfg.form_id": "7", "node_label": ""})
    options = _options((await editor.get(f"/nodes/{node}")).text, "form_id")
    assert ("7", "7 (no longer exists) (7)") in options


async def test_wait_for_event_and_engagement_pick_the_email_step_by_its_label(
    editor: Editor,
) -> None:
    email = await _add(editor, "action.email")
    await editor.post(
        f"/nodes/{email}/config", {"node_label": "Send the guide", "cfg.subject": "Hi"}
    )
    wait = await _add(editor, "wait.event", 300)
    options = _options((await editor.get(f"/nodes/{wait}")).text, "for_node")
    assert (email, f"Send the guide (Send email · {email})") in options
    condition = await _add(editor, "condition.engagement", 600)
    options = _options((await editor.get(f"/nodes/{condition}")).text, "node_id")
    assert (email, f"Send the guide (Send email · {email})") in options
    assert all(value != condition for value, _text in options)  # never itself


async def test_web_content_picks_a_content_block(
    editor: Editor, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as db, db.begin():
        db.add(ContentBlock(name="Spring offer"))
    node = await _add(editor, "action.web_content")
    options = _options((await editor.get(f"/nodes/{node}")).text, "block_id")
    assert ("1", "Spring offer (#1)") in options
