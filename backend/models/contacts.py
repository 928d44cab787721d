"""Moved to ``runtime.models.contacts`` (the runtime owns its tables); kept for old imports."""

from runtime.models.contacts import Channel, Contact, ContactConsent, Visitor

__all__ = ["Channel", "Contact", "ContactConsent", "Visitor"]
