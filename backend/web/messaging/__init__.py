"""Messaging pages and public endpoints: outbox, tasks, tracking, unsubscribe, SMS callbacks."""

from backend.web.messaging import (
    outbox,
    sample,
    sms,
    suppressions,
    tasks,
    tracking,
    unsubscribe,
)
from backend.web.messaging.lifespan import messaging_lifespan

ROUTES = [
    *suppressions.ROUTES,
    *outbox.ROUTES,
    *tasks.ROUTES,
    *tracking.ROUTES,
    *unsubscribe.ROUTES,
    *sms.ROUTES,
    *sample.ROUTES,
]

__all__ = ["ROUTES", "messaging_lifespan"]
