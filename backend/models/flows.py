"""Moved to ``runtime.models.flows`` (the runtime owns its tables); kept for old imports."""

from runtime.models.flows import Flow, FlowStatus, FlowVersion, LifecyclePhase

__all__ = ["Flow", "FlowStatus", "FlowVersion", "LifecyclePhase"]
