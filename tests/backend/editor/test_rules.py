"""Rule-bearing steps get the contacts page's filter builder and a live count of who matches."""

from __future__ import annotations

import json

from backend.models import Contact
from tests.backend.editor.conftest import Editor


async def _contacts(editor: Editor) -> None:
    async with editor.sessions() as db, db.begin():
        db.add_all(
            [
                Contact(email="asa@example.se", tags=["vip"]),
                Contact(email="bo@example.se", tags=["vip", "partner"]),
                Contact(email="cia@example.se", tags=[]),
            ]
        )


async def _count(editor: Editor, field: str, rule: str) -> str:
    response = await editor.client.get(
        f"{editor.base}/rule-count", params={"field": field, f"cfg.{field}": rule}
    )
    assert response.status_code == 200
    return response.text.strip()


async def test_rule_steps_show_the_builder_and_count_who_matches(editor: Editor) -> None:
    await _contacts(editor)
    for type_id, field in (
        ("condition.rule", "rule"),
        ("selection.audience", "audience"),
        ("trigger.audience_entered", "audience"),
    ):
        await editor.post("/nodes", {"type": type_id, "x": 0, "y": 0})
        node = (await editor.flow()).draft_graph["nodes"][-1]["id"]
        panel = (await editor.get(f"/nodes/{node}")).text
        assert f'data-field="cfg-{field}"' in panel and f'id="cfg-{field}-count"' in panel
        assert '<option value="tags">' in panel  # the contacts page's fields
    vip = json.dumps({"field": "tags", "op": "contains", "value": "vip"})
    assert await _count(editor, "rule", vip) == "2 of 3 contacts match now."
    assert await _count(editor, "rule", "") == "Everyone: 3 contacts."
    assert "not valid JSON" in await _count(editor, "rule", "{oops")


async def test_the_builder_adds_a_condition_to_the_rule(editor: Editor) -> None:
    await _contacts(editor)
    first = await editor.client.get(
        f"{editor.base}/rule-add", params={"key": "tags", "op": "contains", "value": "vip"}
    )
    rule = first.json()["rule"]
    assert json.loads(rule) == {"field": "tags", "op": "contains", "value": "vip"}
    second = await editor.client.get(
        f"{editor.base}/rule-add",
        params={"current": rule, "key": "tags", "op": "contains", "value": "partner"},
    )
    both = second.json()["rule"]
    assert await _count(editor, "rule", both) == "1 of 3 contacts matches now."
    wrong = await editor.client.get(
        f"{editor.base}/rule-add", params={"key": "shoe_size", "op": "equals", "value": "42"}
    )
    assert wrong.json() == {"error": "there is no attribute “shoe_size”"}
