"""What success means for a flow: its goal, named in the flow settings.

A flow's goal is one of three things a customer can do after entering: an
event (``purchase`` with ``amount > 500``), a custom attribute reaching a value
(``plan equals "pro"``), or a lifecycle stage reached (``customer`` or later).
It is counted within ``within_days`` of entering the flow, whether the journey
is still running or already over, since many conversions come after the last
message. Goal nodes on the canvas count too (``runtime.conversions``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nodes.builtin.contact import LIFECYCLE_STAGES, Stage
from runtime.rules import AttributeCondition, PropertyFilter

__all__ = ["FLOW_GOAL", "FlowGoal", "GoalKind", "stages_from"]

GoalKind = Literal["event", "attribute", "stage"]
# The ``goal`` a conversion records when the flow's own goal (not a goal node) was met.
FLOW_GOAL = "flow"


class FlowGoal(BaseModel):
    """The flow-wide goal, versioned with the graph like the other flow settings."""

    model_config = ConfigDict(extra="forbid")

    kind: GoalKind = "event"
    label: str = Field(default="Converted", min_length=1, max_length=80)
    event_type: str | None = Field(default=None, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    where: tuple[PropertyFilter, ...] = Field(default=(), max_length=20)
    attribute: AttributeCondition | None = None
    stage: Stage | None = None
    within_days: int = Field(default=30, ge=1, le=365)

    @model_validator(mode="after")
    def _says_what(self) -> FlowGoal:
        needed = {
            "event": (self.event_type, "an event goal needs the event's type"),
            "attribute": (self.attribute, "an attribute goal needs the attribute and its value"),
            "stage": (self.stage, "a lifecycle stage goal needs the stage"),
        }
        value, message = needed[self.kind]
        if value is None:
            raise ValueError(message)
        return self


def stages_from(stage: str) -> tuple[str, ...]:
    """The stages at or after ``stage`` in funnel order: reaching any of them reaches it."""
    return LIFECYCLE_STAGES[LIFECYCLE_STAGES.index(stage) :]
