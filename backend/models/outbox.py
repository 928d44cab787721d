"""Moved to ``runtime.models.outbox`` (the runtime owns its tables); kept for old imports."""

from runtime.models.outbox import OutboxMessage, OutboxStatus

__all__ = ["OutboxMessage", "OutboxStatus"]
