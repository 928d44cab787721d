"""The "task" channel: a call-list task for a salesperson, stored in the ``tasks`` table.

Payload: ``{"owner_id", "contact_id"?, "title", "note"?, "due_at"?}`` (``due_at``
an ISO 8601 string or absent). The task's ``idempotency_key`` is the outbox
message's key, so a retried delivery finds the task it already created.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import TaskStatus
from nodes.sdk import Clock, SystemClock
from runtime.delivery import Delivered, Outgoing, PermanentError
from runtime.sql import TASKS, upsert_insert

__all__ = ["TaskDeliverer"]


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


class TaskDeliverer:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock | None = None
    ) -> None:
        self.sessions = sessions
        self.clock = clock or SystemClock()

    async def deliver(self, message: Outgoing) -> Delivered:
        payload = message.payload
        title = str(payload.get("title") or "").strip()
        if not title:
            raise PermanentError("the task has no title")
        contact_id = payload.get("contact_id", message.contact_id)
        row = {
            "contact_id": int(contact_id) if contact_id is not None else None,
            "owner_id": payload.get("owner_id"),
            "title": title[:300],
            "note": str(payload.get("note") or ""),
            "due_at": _due(payload.get("due_at")),
            "status": TaskStatus.open.value,
            "journey_id": message.journey_id,
            "node_id": message.node_id,
            "idempotency_key": message.idempotency_key,
            "created_at": self.clock.now(),
        }
        async with self.sessions() as session, session.begin():
            stmt = (
                upsert_insert(session, TASKS)
                .values(row)
                .on_conflict_do_nothing(index_elements=[TASKS.c.idempotency_key])
                .returning(TASKS.c.id)
            )
            task_id = await session.scalar(stmt)
            if task_id is None:
                task_id = await session.scalar(
                    select(TASKS.c.id).where(TASKS.c.idempotency_key == message.idempotency_key)
                )
        return Delivered(provider_message_id=f"task:{task_id}")
