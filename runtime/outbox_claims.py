"""Taking a delivery claim: due outbox messages leased to one sender, sized per channel.

``claim_all`` is PostgreSQL's: every channel's share (``sizes``) and the
messages no installed channel sends (``others``) in one statement, with each
message's contact locale and what the delivery ledger says a provider already
accepted. ``claim_each`` is SQLite's (where a claim is never contended): one
``runtime.claims.claim_outbox`` per channel. ``runtime.outbox`` sends what
either returns.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from runtime.claims import OUTBOX_CLAIMED, OUTBOX_DUE_SQL, claim_outbox
from runtime.messaging.gate import DELIVERIES
from runtime.models import DeliveryState, OutboxStatus
from runtime.sql import CONTACTS, OUTBOX, among

__all__ = ["claim_all", "claim_each", "contact_locales"]


async def claim_each(
    session: AsyncSession,
    owner: str,
    now: datetime,
    sizes: dict[str, int],
    others: int,
    *,
    lease: timedelta,
) -> list[Any]:
    """The claim as one statement per channel (SQLite, where a claim is never contended)."""
    rows: list[Any] = []
    for channel, size in sizes.items():
        rows += await claim_outbox(
            session, owner=owner, now=now, limit=size, lease=lease, channel=channel
        )
    # Messages no installed channel can send fail (and retry) rather than wait unseen.
    rows += await claim_outbox(
        session,
        owner=owner,
        now=now,
        limit=others,
        lease=lease,
        other_than=list(sizes),
    )
    return rows


def _due(now: datetime, size: int, name: str, *where: Any) -> Any:
    return (
        select(OUTBOX.c.id)
        .where(OUTBOX_DUE_SQL, OUTBOX.c.next_attempt_at <= now, *where)
        .order_by(OUTBOX.c.next_attempt_at)
        .limit(size)
        .with_for_update(skip_locked=True)
        .cte(name)
    )


async def claim_all(
    session: AsyncSession,
    owner: str,
    now: datetime,
    sizes: dict[str, int],
    others: int,
    *,
    lease: timedelta,
) -> tuple[list[Any], dict[int, str | None]]:
    """Every channel's claim in one PostgreSQL statement, each sized to its channel (as
    ``runtime.claims.claim_outbox`` per channel), with each message's contact locale and
    what the delivery ledger says a provider already accepted (id -> provider's id)."""
    picks = [
        _due(now, size, f"due_{at}", OUTBOX.c.channel == channel)
        for at, (channel, size) in enumerate(sizes.items())
    ]
    # Messages no installed channel can send fail (and retry) rather than wait unseen.
    picks.append(_due(now, others, "due_other", OUTBOX.c.channel.not_in(list(sizes))))
    ids = union_all(*(select(pick.c.id) for pick in picks))
    ledger = select(DELIVERIES.c.provider_message_id).where(
        DELIVERIES.c.outbox_id == OUTBOX.c.id, DELIVERIES.c.state == DeliveryState.accepted.value
    )
    result = await session.execute(
        update(OUTBOX)
        .where(OUTBOX.c.id.in_(ids))
        .values(
            status=OutboxStatus.sending.value,
            lease_owner=owner,
            lease_until=now + lease,
            attempts=OUTBOX.c.attempts + 1,
        )
        .returning(
            *OUTBOX_CLAIMED,
            select(CONTACTS.c.locale)
            .where(CONTACTS.c.id == OUTBOX.c.contact_id)
            .scalar_subquery()
            .label("locale"),
            exists(ledger).label("accepted"),
            ledger.scalar_subquery().label("accepted_id"),
        )
    )
    order = {channel: at for at, channel in enumerate(sizes)}
    rows = sorted(result.all(), key=lambda r: (order.get(r.channel, len(order)), r.id))
    return rows, {int(r.id): r.accepted_id for r in rows if r.accepted}


async def contact_locales(session: AsyncSession, contact_ids: set[int]) -> dict[int, str]:
    if not contact_ids:
        return {}
    rows = await session.execute(
        select(CONTACTS.c.id, CONTACTS.c.locale).where(
            among(session, CONTACTS.c.id, contact_ids), CONTACTS.c.locale.is_not(None)
        )
    )
    return {int(row.id): str(row.locale) for row in rows}
