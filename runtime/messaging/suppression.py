"""The suppression list and consent changes that feed it (unsubscribe, STOP, hard bounce).

Every send checks ``blocking_reason`` (through the gate). Unsubscribes and STOP
replies also withdraw the contact's consent for the channel: ``unsubscribe`` and
``resubscribe`` change the list and return the ``ConsentChange`` they imply, and
the caller (the web layer, which owns consent and its history) records it in the
same transaction, so the editor's nodes and the contact page agree with the list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from runtime.messaging.phone import BadNumber, to_e164
from runtime.models import Contact, Suppression, SuppressionReason
from runtime.sql import among, dialect_name, upsert_insert

__all__ = [
    "ConsentChange",
    "address_for",
    "blocking_reason",
    "blocks",
    "consent_withdrawn",
    "listed",
    "resubscribe",
    "suppress",
    "unsubscribe",
]

SUPPRESSIONS: Table = Suppression.__table__  # type: ignore[assignment]
# Reasons that stop even transactional messages: the address cannot receive mail at all.
_BLOCKS_ALL = {SuppressionReason.hard_bounce.value, SuppressionReason.manual.value}
_OPT_OUTS = (SuppressionReason.unsubscribed.value, SuppressionReason.stop.value)


@dataclass(frozen=True)
class ConsentChange:
    """A fact for the caller to record: ``contact_id`` withdrew (or granted) consent."""

    contact_id: int
    channel: str
    granted: bool
    source: str
    at: datetime


def address_for(channel: str, to: Any, region: str = "SE") -> str | None:
    """The normalised address the suppression list is keyed by (``None``: not applicable)."""
    if not to:
        return None
    if channel == "email":
        return str(to).strip().lower()
    if channel == "sms":
        try:
            return to_e164(str(to), region)
        except BadNumber:
            return str(to).strip()
    return None


async def suppress(
    session: AsyncSession,
    *,
    channel: str,
    address: str,
    reason: SuppressionReason,
    now: datetime,
    contact_id: int | None = None,
    source: str = "",
) -> None:
    """Put ``address`` on the list (a second entry for the same address is ignored)."""
    stmt = upsert_insert(session, SUPPRESSIONS).values(
        channel=channel,
        address=address,
        reason=reason.value,
        contact_id=contact_id,
        source=source[:200],
        created_at=now,
    )
    await session.execute(
        stmt.on_conflict_do_nothing(index_elements=[SUPPRESSIONS.c.channel, SUPPRESSIONS.c.address])
    )


async def blocking_reason(
    session: AsyncSession, *, channel: str, address: str | None, marketing: bool
) -> str | None:
    """Why the list forbids this send, or ``None``. Opt-outs stop marketing only."""
    if address is None:
        return None
    reason = await session.scalar(
        select(SUPPRESSIONS.c.reason).where(
            SUPPRESSIONS.c.channel == channel, SUPPRESSIONS.c.address == address
        )
    )
    return str(reason) if blocks(reason, marketing=marketing) else None


def blocks(reason: str | None, *, marketing: bool) -> bool:
    """Whether a listing with ``reason`` stops a send: opt-outs stop marketing only."""
    return reason is not None and (marketing or reason in _BLOCKS_ALL)


_LISTED = text(
    "SELECT suppressions.address, suppressions.reason FROM suppressions "
    "WHERE suppressions.channel = :channel AND suppressions.address = ANY(:addresses)"
)


async def listed(session: AsyncSession, channel: str, addresses: Iterable[str]) -> dict[str, str]:
    """The listing reason of each of ``addresses`` on the list (one query for a whole batch)."""
    wanted = sorted(set(addresses))
    if not wanted:
        return {}
    if dialect_name(session) == "postgresql":  # once per claim: the statement is written once
        rows = await session.execute(_LISTED, {"channel": channel, "addresses": wanted})
        return {str(row.address): str(row.reason) for row in rows}
    rows = await session.execute(
        select(SUPPRESSIONS.c.address, SUPPRESSIONS.c.reason).where(
            SUPPRESSIONS.c.channel == channel, among(session, SUPPRESSIONS.c.address, wanted)
        )
    )
    return {str(row.address): str(row.reason) for row in rows}


def _contact_address(contact: Contact, channel: str, region: str) -> str | None:
    return address_for(channel, contact.email if channel == "email" else contact.phone, region)


async def unsubscribe(
    session: AsyncSession,
    contact: Contact,
    channel: str,
    *,
    source: str,
    now: datetime,
    reason: SuppressionReason = SuppressionReason.unsubscribed,
    region: str = "SE",
) -> ConsentChange:
    """Suppress the contact's address on ``channel``; returns the consent withdrawal to record."""
    address = _contact_address(contact, channel, region)
    if address:
        await suppress(
            session,
            channel=channel,
            address=address,
            reason=reason,
            now=now,
            contact_id=contact.id,
            source=source,
        )
    return ConsentChange(contact.id, channel, False, source, now)


async def resubscribe(
    session: AsyncSession,
    contact: Contact,
    channel: str,
    *,
    source: str,
    now: datetime,
    region: str = "SE",
) -> ConsentChange:
    """Lift an opt-out (never a hard bounce) for the address; returns the consent to record."""
    address = _contact_address(contact, channel, region)
    if address:
        await session.execute(
            delete(SUPPRESSIONS).where(
                SUPPRESSIONS.c.channel == channel,
                SUPPRESSIONS.c.address == address,
                SUPPRESSIONS.c.reason.in_(_OPT_OUTS),
            )
        )
    return ConsentChange(contact.id, channel, True, source, now)


def consent_withdrawn(consent: Mapping[str, Any] | None, channel: str) -> bool:
    """Consent for ``channel`` (or for everything) explicitly withdrawn."""
    for name in (channel, "all"):
        entry = (consent or {}).get(name)
        if isinstance(entry, dict) and entry.get("granted") is False:
            return True
    return False
