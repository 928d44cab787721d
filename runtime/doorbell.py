"""The doorbell: a hint that work is due now. It never carries the work itself.

The database is the source of truth (DESIGN principle 1): ringing only makes
an executor look sooner than its next sweep. A lost ring costs latency, never
a journey. Rings happen after commit, so the worker finds the rows.

Rings after commit are coalesced, per doorbell: the first ring of a quiet
spell goes out at once; further rings within ``COALESCE_SECONDS`` become one
trailing ring at the end of that window. A burst of a thousand requests a
second is then ten jobs a second, each finding a full batch of due work,
instead of a thousand jobs finding one or two journeys each; and no ring is
lost, because the trailing one comes after every commit it stands for.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Protocol

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["COALESCE_SECONDS", "Coalesced", "Doorbell", "LocalDoorbell", "NullDoorbell"]
__all__ += ["ring_after_commit"]

COALESCE_SECONDS = 0.1

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


class Coalesced:
    """Rings ``inner`` at most once per ``window`` seconds, plus one trailing ring.

    The trailing ring is what makes coalescing safe: a ring dropped inside the
    window is delivered at its end, after the commit that asked for it.
    """

    def __init__(self, inner: Doorbell, window: float = COALESCE_SECONDS) -> None:
        self.inner = inner
        self.window = window
        self.rung = 0  # rings passed on to ``inner``
        self._last = -window
        self._trailing: asyncio.TimerHandle | None = None

    def ring(self) -> None:
        now = time.monotonic()
        if now - self._last >= self.window and self._trailing is None:
            self._pass_on(now)
        elif self._trailing is None:
            delay = max(0.0, self._last + self.window - now)
            self._trailing = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._trailing = None
        self._pass_on(time.monotonic())

    def _pass_on(self, now: float) -> None:
        self._last = now
        self.rung += 1
        self.inner.ring()


_coalesced: weakref.WeakKeyDictionary[Doorbell, Coalesced] = weakref.WeakKeyDictionary()


def coalesced(doorbell: Doorbell) -> Coalesced:
    """The one coalescing wrapper of ``doorbell`` in this process."""
    if isinstance(doorbell, Coalesced):
        return doorbell
    found = _coalesced.get(doorbell)
    if found is None:
        found = _coalesced[doorbell] = Coalesced(doorbell)
    return found


def ring_after_commit(session: AsyncSession, doorbell: Doorbell | None) -> None:
    """Ring once the session's transaction commits (not before: the worker must see the rows).

    However many batches or items of one transaction ask, the bell rings once,
    and rings of many transactions in a burst are coalesced (see the module docstring).
    """
    if doorbell is None:
        return
    pending: set[int] = session.info.setdefault(_PENDING, set())
    if id(doorbell) in pending:
        return
    pending.add(id(doorbell))

    bell = coalesced(doorbell)

    def _ring(_session: object) -> None:
        pending.discard(id(doorbell))
        bell.ring()

    def _forget(_session: object) -> None:
        pending.discard(id(doorbell))

    event.listen(session.sync_session, "after_commit", _ring, once=True)
    event.listen(session.sync_session, "after_rollback", _forget, once=True)
