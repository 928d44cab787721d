"""Moved to ``runtime.models.journeys`` (the runtime owns its tables); kept for old imports."""

from runtime.models.journeys import LIVE_STATUSES, Journey, JourneyStatus, Step, StepStatus

__all__ = ["LIVE_STATUSES", "Journey", "JourneyStatus", "Step", "StepStatus"]
