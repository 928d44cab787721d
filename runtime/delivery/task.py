"""The "task" channel: a call-list task for a salesperson, stored in the ``tasks`` table.

Payload: ``nodes.sdk.TaskPayload`` (``owner_id``, ``contact_id``, ``title``, ``note``,
``due_at`` an ISO 8601 string or absent, ``email_owner``). The task's ``idempotency_key`` is the
outbox message's key, so a retried delivery finds the task it already created.

A task for a contact without an owner goes to the flow's routing (``runtime.routing``):
the next of its round-robin, else its fallback owner; the contact keeps that owner.

With ``email_owner`` (or the deliverer's ``email_owners`` default) the owner is
also told by email: a transactional outbox message queued in the same
transaction as the task, keyed after it, so it is sent once and only when the
task was actually created.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import column, select, table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from nodes.sdk import Clock, SystemClock
from nodes.sdk.payloads import TaskPayload
from runtime.delivery import Delivered, Outgoing, PermanentError, read_payload
from runtime.models import TaskStatus
from runtime.routing import owner_for_journey
from runtime.sql import OUTBOX, TASKS, upsert_insert

# The web app's users table (its owner): only the salesperson's address is read here.
_USERS = table("users", column("id"), column("email"))

__all__ = ["TaskDeliverer", "owner_email"]


def _due(value: object) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError as exc:
            raise PermanentError(f"the task's due date {value!r} is not a date") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def owner_email(to: str, row: dict[str, Any], task_id: int, base_url: str) -> dict[str, Any]:
    """The email payload telling a salesperson about a new task."""
    lines = [row["title"]]
    if row["note"]:
        lines += ["", row["note"]]
    if row["due_at"] is not None:
        lines += ["", f"Due: {row['due_at']:%Y-%m-%d %H:%M} UTC"]
    if row["contact_id"] is not None:
        lines += ["", f"Contact: {base_url}/contacts/{row['contact_id']}"]
    lines += [f"Your tasks: {base_url}/tasks"]
    return {"to": to, "subject": f"New task: {row['title']}"[:200], "text": "\n".join(lines)}


class _AlreadyThere(Exception):
    """The task exists already; raised to roll back what creating it again began."""


class TaskDeliverer:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock | None = None,
        *,
        base_url: str = "",
        email_owners: bool = False,
    ) -> None:
        self.sessions = sessions
        self.clock = clock or SystemClock()
        self.base_url = base_url.rstrip("/")
        self.email_owners = email_owners

    async def deliver(self, message: Outgoing) -> Delivered:
        payload = read_payload(TaskPayload, message)
        title = payload.title.strip()
        if not title:
            raise PermanentError("the task has no title")
        contact_id = payload.contact_id if "contact_id" in message.payload else message.contact_id
        now = self.clock.now()
        row = {
            "contact_id": int(contact_id) if contact_id is not None else None,
            "owner_id": payload.owner_id,
            "title": title[:300],
            "note": payload.note,
            "due_at": _due(payload.due_at),
            "status": TaskStatus.open.value,
            "journey_id": message.journey_id,
            "node_id": message.node_id,
            "idempotency_key": message.idempotency_key,
            "created_at": now,
        }
        try:
            async with self.sessions() as session, session.begin():
                task_id = await self._create(session, message, payload, row, now)
        except _AlreadyThere:
            async with self.sessions() as session:
                existing = await session.scalar(
                    select(TASKS.c.id).where(TASKS.c.idempotency_key == message.idempotency_key)
                )
            return Delivered(provider_message_id=f"task:{existing}")
        return Delivered(provider_message_id=f"task:{task_id}")

    async def _create(
        self,
        session: AsyncSession,
        message: Outgoing,
        payload: TaskPayload,
        row: dict[str, Any],
        now: datetime,
    ) -> int:
        found = await session.scalar(
            select(TASKS.c.id).where(TASKS.c.idempotency_key == message.idempotency_key)
        )
        if found is not None:
            return int(found)
        if row["owner_id"] is None and message.journey_id is not None:
            row["owner_id"] = await owner_for_journey(
                session, message.journey_id, row["contact_id"]
            )
        stmt = (
            upsert_insert(session, TASKS)
            .values(row)
            .on_conflict_do_nothing(index_elements=[TASKS.c.idempotency_key])
            .returning(TASKS.c.id)
        )
        task_id = await session.scalar(stmt)
        if task_id is None:
            # A twin delivery created it in between: undo this one's turn of the routing.
            raise _AlreadyThere
        if payload.email_owner if payload.email_owner is not None else self.email_owners:
            await self._email_owner(session, message, row, task_id, now)
        return int(task_id)

    async def _email_owner(
        self,
        session: AsyncSession,
        message: Outgoing,
        row: dict[str, Any],
        task_id: int,
        now: datetime,
    ) -> None:
        if row["owner_id"] is None:
            return
        to = await session.scalar(select(_USERS.c.email).where(_USERS.c.id == row["owner_id"]))
        if not to:
            return
        stmt = upsert_insert(session, OUTBOX).values(
            idempotency_key=f"{message.idempotency_key}:owner-email"[:200],
            channel="email",
            category="transactional",
            journey_id=message.journey_id,
            node_id=message.node_id,
            payload=owner_email(to, row, task_id, self.base_url),
            next_attempt_at=now,
            created_at=now,
        )
        await session.execute(
            stmt.on_conflict_do_nothing(index_elements=[OUTBOX.c.idempotency_key])
        )
