"""Moved to ``runtime.models.tasks`` (the runtime owns its tables); kept for old imports."""

from runtime.models.tasks import Task, TaskStatus

__all__ = ["Task", "TaskStatus"]
