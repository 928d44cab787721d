"""Changes that used to leave no trace write an audit entry: consent, retries, tasks, profile."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import AuditEntry, OutboxMessage, Role, Suppression, Task
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import post_form


async def _audit(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, str, Any]]:
    """(action, actor, details) of every entry but sign-ins, oldest first."""
    async with sessions() as db:
        entries = await db.scalars(
            select(AuditEntry).where(AuditEntry.action != "auth.login").order_by(AuditEntry.id)
        )
        return [(e.action, e.actor_label, e.details) for e in entries]


async def _add(sessions: async_sessionmaker[AsyncSession], row: Any) -> int:
    async with sessions() as db, db.begin():
        db.add(row)
        await db.flush()
        return int(row.id)


async def test_lifting_a_suppression_is_audited_with_the_address(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.admin)
    entry = await _add(
        sessions, Suppression(channel="email", address="åsa@example.se", reason="hard_bounce")
    )
    response = await post_form(client, f"/outbox/suppressions/{entry}/remove", {})
    assert response.status_code in (302, 303), response.text
    assert await _audit(sessions) == [
        (
            "suppression.removed",
            "admin@example.com",
            {"channel": "email", "address": "åsa@example.se", "reason": "hard_bounce"},
        )
    ]
    missing = await post_form(client, f"/outbox/suppressions/{entry}/remove", {})
    assert missing.status_code == 404
    assert len(await _audit(sessions)) == 1


async def test_sending_a_failed_message_again_is_audited(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.admin)
    dead = await _add(
        sessions,
        OutboxMessage(idempotency_key="dead-1", channel="email", status="dead", payload={}),
    )
    sent = await _add(
        sessions,
        OutboxMessage(idempotency_key="sent-1", channel="email", status="sent", payload={}),
    )
    assert (await post_form(client, f"/outbox/{dead}/retry", {})).status_code in (302, 303)
    # Refused (it was sent): nothing changed, so nothing is recorded.
    assert (await post_form(client, f"/outbox/{sent}/retry", {})).status_code == 400
    assert [(a, who) for a, who, _d in await _audit(sessions)] == [
        ("outbox.retried", "admin@example.com")
    ]


async def test_taking_and_completing_a_task_is_audited(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.viewer)
    task = await _add(sessions, Task(title="Ring Örjan om offerten"))
    await post_form(client, f"/tasks/{task}/take", {})
    await post_form(client, f"/tasks/{task}/done", {})
    await post_form(client, f"/tasks/{task}/done", {})  # already done: no second entry
    assert await _audit(sessions) == [
        ("task.taken", "viewer@example.com", {"title": "Ring Örjan om offerten"}),
        ("task.completed", "viewer@example.com", {"title": "Ring Örjan om offerten"}),
    ]


async def test_profile_changes_and_signing_out_are_audited(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.viewer)
    saved = await post_form(
        client, "/profile", {"locale": "sv", "time_zone": "Europe/Stockholm"}, form_page="/profile"
    )
    assert saved.status_code in (302, 303), saved.text
    refused = await post_form(
        client, "/profile", {"time_zone": "Mars/Olympus"}, form_page="/profile"
    )
    assert refused.status_code == 400
    await post_form(client, "/logout", {}, form_page="/profile")
    assert await _audit(sessions) == [
        (
            "profile.changed",
            "viewer@example.com",
            {"locale": "sv", "time_zone": "Europe/Stockholm"},
        ),
        ("auth.logout", "viewer@example.com", {}),
    ]


async def test_the_retention_page_says_what_is_kept_and_for_how_long(
    signed_in: SignedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await signed_in(Role.admin)
    monkeypatch.setattr(client.app.state.settings, "retention_body_days", 30)
    monkeypatch.setattr(client.app.state.settings, "retention_event_days", 0)
    html = (await client.get("/settings/retention")).text
    assert "RETENTION_STEP_DAYS" in html and "180 days" in html
    assert "30 days" in html and "For ever" in html
    # The results rollup holds pruning back, so charts keep counting pruned history...
    assert "only after it has been counted there" in html
    assert "compares branches from the run history that is kept" in html
    # ...and without a rollup the page says what the charts lose.
    monkeypatch.delitem(client.app.state.runtime.retention_watermarks, "steps")
    html = (await client.get("/settings/retention")).text
    assert "steps older than 180 days are no longer counted" in html
