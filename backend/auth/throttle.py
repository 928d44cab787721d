"""Slowing down password guessing, counted from the audit log, without locking anyone out.

Failed sign-ins are audit rows, so the count is shared by every web process
and survives restarts. Two counts slow a guesser down:

- per account *and* address: after a few failures for one email from one
  address, each further attempt from that address waits twice as long as the
  one before (30 s, 1 min, 2 min ... up to 15 minutes);
- per address: an address that fails many sign-ins, whatever the emails,
  backs off the same way (password spraying).

There is deliberately no count per account from everywhere: that would let a
stranger lock the real owner out by failing on purpose. A successful sign-in
from an address starts its count for that account again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import AuditEntry

LOGIN_OK = "auth.login"
LOGIN_FAILED = "auth.login_failed"
LOGIN_TARGET = "login"


@dataclass(frozen=True)
class ThrottlePolicy:
    window: timedelta = timedelta(minutes=15)
    # Failures allowed before the back-off starts.
    per_account_and_address: int = 5
    per_address: int = 20
    first_delay: timedelta = timedelta(seconds=30)
    longest_delay: timedelta = timedelta(minutes=15)

    def wait(self, failures: list[datetime], free: int, now: datetime) -> timedelta | None:
        """How long after the last of ``failures`` the next attempt must wait, or None."""
        if len(failures) < free:
            return None
        delay = min(self.longest_delay, self.first_delay * 2 ** (len(failures) - free))
        left = failures[-1] + delay - now
        return left if left > timedelta(0) else None


def login_key(email: str) -> str:
    """The audit target id for sign-ins to ``email`` (a hash: emails are longer than the column)."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


async def retry_after(
    session: AsyncSession,
    email: str,
    ip: str | None,
    now: datetime,
    policy: ThrottlePolicy = ThrottlePolicy(),
) -> timedelta | None:
    """How long this address must wait before trying ``email`` again, or None if it may now."""
    since = now - policy.window
    pair_rows = (
        await session.execute(
            select(AuditEntry.at, AuditEntry.action)
            .where(
                AuditEntry.target_type == LOGIN_TARGET,
                AuditEntry.target_id == login_key(email),
                AuditEntry.action.in_((LOGIN_OK, LOGIN_FAILED)),
                AuditEntry.ip == ip if ip is not None else AuditEntry.ip.is_(None),
                AuditEntry.at > since,
            )
            .order_by(AuditEntry.at)
        )
    ).all()
    pair: list[datetime] = []
    for at, action in pair_rows:
        pair = [] if action == LOGIN_OK else [*pair, at]
    from_address = list(
        (
            await session.scalars(
                select(AuditEntry.at)
                .where(
                    AuditEntry.target_type == LOGIN_TARGET,
                    AuditEntry.action == LOGIN_FAILED,
                    AuditEntry.ip == ip if ip is not None else AuditEntry.ip.is_(None),
                    AuditEntry.at > since,
                )
                .order_by(AuditEntry.at)
            )
        ).all()
    )
    waits = [
        wait
        for wait in (
            policy.wait(pair, policy.per_account_and_address, now),
            policy.wait(from_address, policy.per_address, now),
        )
        if wait is not None
    ]
    return max(waits) if waits else None
