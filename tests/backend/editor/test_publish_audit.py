"""Publishing is audited with a diff against the previous version; so are pause, resume, archive."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from backend.models import AuditEntry
from tests.backend.editor.conftest import Editor, publish_second_version
from tests.runtime.nodes import canonical_graph


async def _entries(editor: Editor, action: str) -> list[AuditEntry]:
    async with editor.sessions() as db:
        return list(
            await db.scalars(
                select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
            )
        )


async def test_publish_records_what_changed_since_the_previous_version(editor: Editor) -> None:
    await editor.post("/import", {"graph": json.dumps(canonical_graph())})
    assert "Published version 1." in (await editor.post("/publish", {"note": "först"})).text
    first = (await _entries(editor, "flow.published"))[0].details
    assert first["version"] == 1 and first["previous"] is None and first["note"] == "först"
    # The first version: every step and connection is new.
    assert {n["id"] for n in first["nodes_added"]} == {
        "form",
        "confirm",
        "opened",
        "reminder",
        "later",
        "notify",
    }
    assert first["nodes_removed"] == [] and first["nodes_changed"] == []
    assert {"source": "form", "port": "next", "target": "confirm"} in first["edges_added"]

    await publish_second_version(editor, subject="Din nedladdning, åäö")

    second: dict[str, Any] = (await _entries(editor, "flow.published"))[1].details
    assert second["version"] == 2 and second["previous"] == 1
    assert [n["id"] for n in second["nodes_added"]] == ["tag"]
    assert [(n["id"], n["type"]) for n in second["nodes_removed"]] == [("notify", "test.notify")]
    # Moving "later" is layout, not a change; the subject's before and after are kept.
    [changed] = second["nodes_changed"]
    assert (changed["id"], changed["type"], changed["label"]) == ("confirm", "test.email", "")
    assert changed["changes"]["config.subject"] == {
        "from": "Your download",
        "to": "Din nedladdning, åäö",
    }
    assert second["edges_added"] == [{"source": "later", "port": "next", "target": "tag"}]
    assert second["edges_removed"] == [{"source": "later", "port": "next", "target": "notify"}]
    assert second["settings_changed"] == {}


async def test_pause_resume_and_archive_are_audited(editor: Editor) -> None:
    await editor.post("/import", {"graph": json.dumps(canonical_graph())})
    await editor.post("/publish", {})
    await editor.post("/lifecycle", {"action": "pause"})
    await editor.post("/lifecycle", {"action": "resume"})
    refused = await editor.post("/lifecycle", {"action": "resume"})
    assert refused.status_code == 409
    await editor.post("/lifecycle", {"action": "archive"})
    async with editor.sessions() as db:
        actions = list(
            await db.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.action.startswith("flow."))
                .order_by(AuditEntry.id)
            )
        )
    # The refused resume changed nothing and left no entry.
    assert actions == ["flow.published", "flow.paused", "flow.resumed", "flow.archived"]
