"""Taking a delivery claim: due outbox messages leased to one sender, sized per channel.

``claim_all`` is PostgreSQL's: every channel's share (``sizes``) and the
messages no installed channel sends (``others``) in one statement, with each
message's contact locale and what the delivery ledger says a provider already
accepted. ``claim_each`` is SQLite's (where a claim is never contended): one
``runtime.claims.claim_outbox`` per channel. ``runtime.outbox`` sends what
either returns.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, String, column, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import TextualSelect

from runtime.claims import OUTBOX_CLAIMED, OUTBOX_DUE_SQL, claim_outbox
from runtime.models import DeliveryState, OutboxStatus
from runtime.sql import CONTACTS, among

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


_CLAIMED_SQL = ", ".join(f"outbox_messages.{column.name}" for column in OUTBOX_CLAIMED)


def _pick(name: str, where: str, size: str) -> str:
    return (
        f"{name} AS (SELECT outbox_messages.id FROM outbox_messages "  # noqa: S608 - no input
        f"WHERE {OUTBOX_DUE_SQL.text} AND outbox_messages.next_attempt_at <= :now AND {where} "
        f"ORDER BY outbox_messages.next_attempt_at LIMIT :{size} FOR UPDATE SKIP LOCKED)"
    )


@functools.lru_cache(maxsize=32)
def _claim_statement(channels: tuple[str, ...]) -> TextualSelect:
    """The claim for these channels as SQL written once: built through SQLAlchemy's
    expression language, the statement cost more CPU to construct and look up in the
    compiled cache than to run. Bound: ``now``, ``owner``, ``until``, each channel's
    name and size (``channel_<n>``, ``size_<n>``) and ``others``."""
    picks = [
        _pick(f"due_{at}", f"outbox_messages.channel = :channel_{at}", f"size_{at}")
        for at in range(len(channels))
    ]
    # Messages no installed channel can send fail (and retry) rather than wait unseen.
    named = ", ".join(f":channel_{at}" for at in range(len(channels)))
    others = f"outbox_messages.channel NOT IN ({named})" if channels else "TRUE"
    picks.append(_pick("due_other", others, "others"))
    names = [*(f"due_{at}" for at in range(len(channels))), "due_other"]
    ids = " UNION ALL ".join("SELECT id FROM " + name for name in names)  # noqa: S608
    ledger = (
        "FROM deliveries WHERE deliveries.outbox_id = outbox_messages.id "
        f"AND deliveries.state = '{DeliveryState.accepted.value}'"
    )
    sql = (
        f"WITH {', '.join(picks)} "  # noqa: S608 - fixed names; channels are bound
        f"UPDATE outbox_messages SET status='{OutboxStatus.sending.value}', "
        "lease_owner=:owner, lease_until=:until, attempts=(outbox_messages.attempts + 1) "
        f"WHERE outbox_messages.id IN ({ids}) "
        f"RETURNING {_CLAIMED_SQL}, "
        "(SELECT contacts.locale FROM contacts WHERE contacts.id = outbox_messages.contact_id) "
        f"AS locale, EXISTS (SELECT 1 {ledger}) AS accepted, "
        f"(SELECT deliveries.provider_message_id {ledger}) AS accepted_id"
    )
    return text(sql).columns(
        *OUTBOX_CLAIMED,
        column("locale", String()),
        column("accepted", Boolean()),
        column("accepted_id", String()),
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
    params: dict[str, Any] = {"now": now, "owner": owner, "until": now + lease, "others": others}
    for at, (channel, size) in enumerate(sizes.items()):
        params[f"channel_{at}"] = channel
        params[f"size_{at}"] = size
    result = await session.execute(_claim_statement(tuple(sizes)), params)
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
