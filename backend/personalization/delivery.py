"""The ``web_content`` channel: a flow's "show web content" becomes a slot assignment row.

Payload (from ``action.web_content``): ``slot``, either ``html`` or a block's
``variant_id`` (``block_id`` alone means its first variant), ``contact_id``
and/or ``visitor_id``, and ``expires_at`` (ISO 8601). The row's
``idempotency_key`` is the outbox message's, so a retried delivery finds the
row it already wrote. HTML is cleaned again here: the allow-list is ours.

``PLUGIN`` registers it as a channel plugin (the ``touchflow.channels`` entry
point in ``pyproject.toml``), so every executor, the arq worker included, has it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import ContentVariant, SlotAssignment, Visitor
from backend.personalization.recent import changed
from backend.personalization.sanitize import MAX_HTML_CHARS, sanitize_html
from nodes.sdk import Clock, SystemClock
from runtime.delivery import Delivered, Outgoing, PermanentError
from runtime.delivery.plugins import Channel, ChannelSetup
from runtime.sql import upsert_insert

__all__ = ["PLUGIN", "SLOT_PATTERN", "WebContentDeliverer"]

CHANNEL = "web_content"
SLOT_PATTERN = re.compile(r"^[a-z0-9_-]{1,64}$")
ASSIGNMENTS: Table = SlotAssignment.__table__  # type: ignore[assignment]


def _expiry(value: object) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError as exc:
            raise PermanentError(f"the content's expiry {value!r} is not a date") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _variant(session: AsyncSession, payload: Mapping[str, Any]) -> int | None:
    if payload.get("variant_id") is not None:
        found = await session.scalar(
            select(ContentVariant.id).where(ContentVariant.id == int(payload["variant_id"]))
        )
    elif payload.get("block_id") is not None:
        found = await session.scalar(
            select(ContentVariant.id)
            .where(ContentVariant.block_id == int(payload["block_id"]))
            .order_by(ContentVariant.position, ContentVariant.id)
            .limit(1)
        )
    else:
        return None
    if found is None:
        raise PermanentError("the content block or variant no longer exists")
    return int(found)


class WebContentDeliverer:
    """Writes ``slot_assignments`` rows; the decision endpoint reads them."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock | None = None
    ) -> None:
        self.sessions = sessions
        self.clock = clock or SystemClock()

    async def deliver(self, message: Outgoing) -> Delivered:
        payload = message.payload
        slot = str(payload.get("slot") or "")
        if not SLOT_PATTERN.match(slot):
            raise PermanentError(f"{slot!r} is not a slot name")
        contact_id = payload.get("contact_id", message.contact_id)
        visitor_id = payload.get("visitor_id")
        if contact_id is None and not visitor_id:
            raise PermanentError("web content needs a contact or a visitor")
        html = payload.get("html")
        clean = sanitize_html(str(html)[:MAX_HTML_CHARS]) if html else None
        async with self.sessions() as session, session.begin():
            variant_id = await _variant(session, payload)
            if variant_id is None and not clean:
                raise PermanentError("web content needs HTML or a content block")
            if contact_id is None and visitor_id:
                # Stitched since the step ran: the content follows the contact.
                contact_id = await session.scalar(
                    select(Visitor.contact_id).where(Visitor.id == str(visitor_id))
                )
            row = {
                "slot": slot,
                "visitor_id": str(visitor_id) if visitor_id else None,
                "contact_id": int(contact_id) if contact_id is not None else None,
                "variant_id": variant_id,
                "html": None if variant_id is not None else clean,
                "expires_at": _expiry(payload.get("expires_at")),
                "journey_id": message.journey_id,
                "idempotency_key": message.idempotency_key,
                "created_at": self.clock.now(),
            }
            stmt = (
                upsert_insert(session, ASSIGNMENTS)
                .values(row)
                .on_conflict_do_nothing(index_elements=[ASSIGNMENTS.c.idempotency_key])
                .returning(ASSIGNMENTS.c.id)
            )
            assignment_id = await session.scalar(stmt)
            if assignment_id is None:
                assignment_id = await session.scalar(
                    select(SlotAssignment.id).where(
                        SlotAssignment.idempotency_key == message.idempotency_key
                    )
                )
        # Committed: this process's decisions show it at once (others within their cache TTL).
        changed(
            visitor_ids=[str(visitor_id) if visitor_id else None],
            contact_ids=[int(contact_id) if contact_id is not None else None],
        )
        return Delivered(provider_message_id=f"slot:{assignment_id}")


def _build(setup: ChannelSetup) -> WebContentDeliverer:
    return WebContentDeliverer(setup.sessions, setup.clock)


# Not gated: a slot assignment is shown on the visitor's own page, it reaches no inbox.
PLUGIN = Channel(CHANNEL, _build, gated=False)
