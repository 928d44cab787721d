"""Slowing down password guessing, counted from the audit log.

Failed sign-ins are audit rows, so the count is shared by every web process
and survives restarts. An email is refused for a while after too many
failures from one address, or after many more from anywhere (a distributed
guess); a successful sign-in starts the count again.
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
    per_address: int = 5
    per_account: int = 20


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
    """How long this email must wait before another attempt, or None if it may try now."""
    rows = (
        await session.execute(
            select(AuditEntry.at, AuditEntry.action, AuditEntry.ip)
            .where(
                AuditEntry.target_type == LOGIN_TARGET,
                AuditEntry.target_id == login_key(email),
                AuditEntry.action.in_((LOGIN_OK, LOGIN_FAILED)),
                AuditEntry.at > now - policy.window,
            )
            .order_by(AuditEntry.at)
        )
    ).all()
    failures: list[datetime] = []
    from_address: list[datetime] = []
    for at, action, row_ip in rows:
        if action == LOGIN_OK:
            failures, from_address = [], []
            continue
        failures.append(at)
        if row_ip == ip:
            from_address.append(at)
    waits = [
        times[-limit] + policy.window - now
        for times, limit in ((from_address, policy.per_address), (failures, policy.per_account))
        if len(times) >= limit
    ]
    return max(waits) if waits else None
