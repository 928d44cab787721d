"""One web app per database for a whole test session, handed to each test as new.

Building the app (routes, templates, OpenAPI) takes a fifth of a second, a fixed
cost that ran once per web test. ``SharedApp.fresh`` gives the same app back
with a fresh copy of its settings, the test's own clock, an empty rate limiter
and nothing a previous test put on ``app.state``. The test client is per test,
so the lifespans (runtime, personalization, messaging) and the cookies are too.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar

from backend.auth.middleware import ApiKeyCache
from backend.ratelimit import MemoryRateLimiter
from backend.settings import Settings
from nodes.sdk import Clock


class SharedApp:
    """An app built once; ``fresh(clock)`` resets it to as-built for the next test."""

    def __init__(self, app: Litestar) -> None:
        self.app = app
        self._settings: Settings = app.state.settings
        self._built: dict[str, Any] = dict(app.state)

    def fresh(self, clock: Clock) -> Litestar:
        state = self.app.state
        for key in list(state):
            del state[key]
        for key, value in self._built.items():
            state[key] = value
        # Tests change settings in place (``app.state.settings.sms_provider = ...``).
        state.settings = self._settings.model_copy(deep=True)
        state.clock = clock
        # settings_for() leaves Redis out, so the limiter is the in-process one.
        state.rate_limiter = MemoryRateLimiter()
        # No API key checked by an earlier test is trusted in this one.
        state.api_keys = ApiKeyCache()
        return self.app
