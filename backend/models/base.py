"""Moved to ``runtime.models.base`` (the runtime owns its tables); kept for old imports."""

from runtime.models.base import NAMING_CONVENTION, Base, BigId, Json, UTCDateTime, utcnow

__all__ = ["NAMING_CONVENTION", "Base", "BigId", "Json", "UTCDateTime", "utcnow"]
