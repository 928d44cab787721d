"""Test mode: the path a test customer would take through the draft, with nothing sent."""

from __future__ import annotations

import json
import re

from sqlalchemy import func, select

from backend.models import Contact, OutboxMessage, Role
from tests.backend.editor.conftest import Editor
from tests.backend.web.conftest import SignedIn
from tests.runtime.nodes import canonical_graph


async def _canonical(editor: Editor) -> None:
    await editor.post("/import", {"graph": json.dumps(canonical_graph())})


def _steps(html: str) -> list[str]:
    return re.findall(r'<li value="\d+"><a href="#node-([\w-]+)"', html)


async def test_a_customer_who_opens_the_email_gets_a_call(editor: Editor) -> None:
    await _canonical(editor)
    events = [
        {"type": "form.submitted"},
        {"type": "email.opened", "after_hours": 5, "properties": {"node_id": "confirm"}},
    ]
    response = await editor.post(
        "/test", {"profile": '{"email": "t@example.com"}', "events": json.dumps(events)}
    )
    assert response.status_code == 200, response.text
    html = response.text
    assert _steps(html) == ["form", "confirm", "opened", "opened", "later", "later", "notify"]
    assert "would send email: Your download" in html
    assert "waits until email.opened at +5 hours" in html
    # The second wait counts from its own moment (the open at +5 h), not from the entry:
    # "+2 days", never "+2.20833 days".
    assert [w.strip() for w in re.findall(r"waits until[^<]*", html)][-1] == "waits until +2 days"
    assert not re.search(r"\+\d+\.\d+ days", html)
    assert "would send task: Call the lead" in html
    assert "The journey completes: nothing follows this step." in html
    # The canvas marks the path: visited nodes and the connections taken.
    assert 'class="node node-visited" id="node-notify"' in html
    assert 'class="edge edge-taken" data-source="opened" data-port="event"' in html
    assert 'class="edge" data-source="opened" data-port="timeout"' in html
    async with editor.sessions() as db:
        assert await db.scalar(select(func.count()).select_from(OutboxMessage)) == 0
    assert (await editor.revision()) == 1  # the import; the test saved nothing


async def test_without_the_open_the_wait_times_out_into_the_reminder(editor: Editor) -> None:
    await _canonical(editor)
    response = await editor.post(
        "/test", {"profile": "{}", "events": '[{"type": "form.submitted"}]'}
    )
    html = response.text
    assert _steps(html) == ["form", "confirm", "opened", "opened", "reminder"]
    assert "waits until +2 days" in html
    assert "would send email: Did you see it?" in html


async def test_a_real_contact_can_be_tested(editor: Editor) -> None:
    await _canonical(editor)
    async with editor.sessions() as db, db.begin():
        db.add(Contact(email="anna@example.com", first_name="Anna"))
    response = await editor.post("/test", {"contact": "anna@example.com", "events": "[]"})
    assert _steps(response.text)[:2] == ["form", "confirm"]
    missing = await editor.post("/test", {"contact": "nobody@example.com", "events": "[]"})
    assert "There is no contact with this email." in missing.text


async def test_bad_test_input_is_explained_on_the_form(editor: Editor) -> None:
    await _canonical(editor)
    response = await editor.post("/test", {"profile": "{oops", "events": '{"type": "x"}'})
    assert response.status_code == 200
    assert "This is not valid JSON (line 1, column 2)." in response.text
    assert "List the events in square brackets" in response.text
    wrong = await editor.post("/test", {"profile": "{}", "events": '[{"after_hours": -1}]'})
    assert "#1: type: Field required" in wrong.text
    assert 'class="test-steps"' not in wrong.text


async def test_viewers_may_run_tests(editor: Editor, signed_in: SignedIn) -> None:
    await _canonical(editor)
    await signed_in(Role.viewer)
    form = (await editor.get("/test")).text
    assert 'name="events"' in form and "form.submitted" in form
    response = await editor.post("/test", {"profile": "{}", "events": "[]"})
    assert response.status_code == 200
    assert _steps(response.text)[0] == "form"
