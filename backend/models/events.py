"""Moved to ``runtime.models.events`` (the runtime owns its tables); kept for old imports."""

from runtime.models.events import Event

__all__ = ["Event"]
