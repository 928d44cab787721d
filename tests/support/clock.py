"""Clocks that stand still until a test moves them: one implementation, three starting points.

- ``FixedClock`` (``nodes.sdk.testing``): the SDK's, for node unit tests; starts on
  Monday 2030-01-07 09:00 UTC.
- ``FakeClock`` (``runtime.clock``): the same clock with ``set()``, what the runtime tests inject.
- ``MovableClock``: the same clock starting on the Monday 2026-03-02 09:00 UTC the web tests assume.
"""

from __future__ import annotations

from datetime import UTC, datetime

from nodes.sdk.testing import DEFAULT_NOW, FixedClock
from runtime.clock import FakeClock

__all__ = ["DEFAULT_NOW", "WEB_START", "FakeClock", "FixedClock", "MovableClock"]

WEB_START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class MovableClock(FakeClock):
    """The runtime's FakeClock, starting on the Monday morning the web tests assume."""

    def __init__(self) -> None:
        super().__init__(WEB_START)
