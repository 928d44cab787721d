"""Where the runtime gets "now": the system clock, or a clock tests move by hand.

Every timestamp the engine writes (due times, leases, step timings, backoff)
comes from one injected clock, so a test can jump two days ahead and drain
instead of sleeping.
"""

from __future__ import annotations

from datetime import datetime

from nodes.sdk import Clock, SystemClock
from nodes.sdk.testing import DEFAULT_NOW, FixedClock

__all__ = ["Clock", "FakeClock", "SystemClock"]


class FakeClock(FixedClock):
    """The SDK's ``FixedClock`` (stands still until ``advance``), which ``set`` also moves."""

    def __init__(self, start: datetime | None = None) -> None:
        super().__init__(start or DEFAULT_NOW)

    def set(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("a clock needs an aware datetime (add tzinfo=UTC)")
        self._now = moment
