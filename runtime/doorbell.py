"""The doorbell: a hint that work is due now. It never carries the work itself.

The database is the source of truth (DESIGN principle 1): ringing only makes
an executor look sooner than its next sweep. A lost ring costs latency, never
a journey. Rings happen after commit, so the worker finds the rows.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["Doorbell", "LocalDoorbell", "NullDoorbell", "ring_after_commit"]

_PENDING = "touchflow.rings_pending"


class Doorbell(Protocol):
    def ring(self) -> None:
        """Say there is work. Must not block; may be called from any coroutine."""


class NullDoorbell:
    """For drain-driven tests and scripts: nobody is listening."""

    def ring(self) -> None:
        return None


class LocalDoorbell:
    """The in-process executor's doorbell: an ``asyncio.Event``."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def ring(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> bool:
        """Wait for a ring or ``seconds``; True when rung. Clears the bell."""
        try:
            await asyncio.wait_for(self._event.wait(), seconds)
        except TimeoutError:
            return False
        finally:
            self._event.clear()
        return True


def ring_after_commit(session: AsyncSession, doorbell: Doorbell | None) -> None:
    """Ring once the session's transaction commits (not before: the worker must see the rows).

    However many batches or items of one transaction ask, the bell rings once.
    """
    if doorbell is None:
        return
    pending: set[int] = session.info.setdefault(_PENDING, set())
    if id(doorbell) in pending:
        return
    pending.add(id(doorbell))

    def _ring(_session: object) -> None:
        pending.discard(id(doorbell))
        doorbell.ring()

    def _forget(_session: object) -> None:
        pending.discard(id(doorbell))

    event.listen(session.sync_session, "after_commit", _ring, once=True)
    event.listen(session.sync_session, "after_rollback", _forget, once=True)
