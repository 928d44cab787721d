"""Messaging pages and public endpoints: outbox, tasks, tracking, unsubscribe, SMS callbacks."""

from backend.web.messaging import (
    outbox,
    sms,
    suppressions,
    tasks,
    test_send,
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
    *test_send.ROUTES,
]

__all__ = ["ROUTES", "messaging_lifespan"]
