"""Moved to ``runtime.models.messaging`` (the runtime owns its tables); kept for old imports."""

from runtime.models.messaging import Delivery, DeliveryState, Suppression, SuppressionReason

__all__ = ["Delivery", "DeliveryState", "Suppression", "SuppressionReason"]
