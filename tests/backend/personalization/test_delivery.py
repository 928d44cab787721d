"""The web_content channel: outbox messages become slot assignments, once, cleaned."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Contact, SlotAssignment, Visitor
from backend.personalization.delivery import WebContentDeliverer
from runtime.delivery import Outgoing, PermanentError
from tests.backend.personalization.conftest import VISITOR, Shop
from tests.backend.web.support import MovableClock


def _message(key: str, **payload: object) -> Outgoing:
    return Outgoing(id=1, idempotency_key=key, channel="web_content", payload=payload)


async def test_delivery_writes_one_clean_assignment(
    sessions: async_sessionmaker[AsyncSession], clock: MovableClock, shop: Shop
) -> None:
    async with sessions() as db, db.begin():
        contact = Contact(email="a@example.com", attributes={}, tags=[], consent={})
        db.add(contact)
        await db.flush()
        db.add(Visitor(id=VISITOR, site_key_id=shop.site_id, contact_id=contact.id, traits={}))
    deliverer = WebContentDeliverer(sessions, clock)
    expires = (clock.now() + timedelta(days=3)).isoformat()
    message = _message(
        "j1:show:1:0",
        slot="offer",
        html="<b onclick=x()>Hi</b><script>x()</script>",
        visitor_id=VISITOR,
        expires_at=expires,
    )
    first = await deliverer.deliver(message)
    again = await deliverer.deliver(message)  # a retried delivery
    assert first == again
    async with sessions() as db:
        [row] = list(await db.scalars(select(SlotAssignment)))
    assert (row.slot, row.html, row.visitor_id) == ("offer", "<b>Hi</b>", VISITOR)
    assert row.contact_id == contact.id  # stitched visitor: the content follows the contact
    by_block = await deliverer.deliver(
        _message(
            "j2:show:1:0",
            slot="hero",
            block_id=shop.block_id,
            visitor_id=VISITOR,
            expires_at=expires,
        )
    )
    assert by_block.provider_message_id is not None
    async with sessions() as db:
        hero = await db.scalar(select(SlotAssignment).where(SlotAssignment.slot == "hero"))
    assert hero is not None and hero.variant_id == shop.variants["linkedin"]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"slot": "Bad Slot", "html": "x", "contact_id": 1}, "not a slot name"),
        ({"slot": "offer", "html": "x"}, "needs a contact or a visitor"),
        ({"slot": "offer", "html": "<script></script>", "visitor_id": VISITOR}, "needs HTML"),
        ({"slot": "offer", "variant_id": 999, "visitor_id": VISITOR}, "no longer exists"),
        (
            {"slot": "offer", "html": "x", "visitor_id": VISITOR, "expires_at": "soon"},
            "not a date",
        ),
    ],
)
async def test_undeliverable_content_is_dead_lettered(
    sessions: async_sessionmaker[AsyncSession],
    clock: MovableClock,
    payload: dict[str, object],
    reason: str,
) -> None:
    with pytest.raises(PermanentError, match=reason):
        await WebContentDeliverer(sessions, clock).deliver(_message("k", **payload))
