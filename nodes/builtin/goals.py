"""The goal node: mark a conversion and end the journey.

With an event, a lifecycle stage or an attribute value set, the goal needs no
incoming connection: when that event arrives for a customer anywhere in the
flow, or their contact reaches the stage or gets the value after entering,
the runtime moves their journey onto the goal (flow setting "exit when the
goal is reached"). Reached through a connection, it ends the journey as
converted all the same.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from nodes.builtin.common import Strict, invalid
from nodes.builtin.contact import LIFECYCLE_STAGES, Stage
from nodes.builtin.triggers import event_passes
from nodes.sdk import N_, Context, EventRecord, Family, NodeType, Outcome, Profile, Trigger
from runtime.rules import PropertyFilter
from runtime.rules.ast import KEY_PATTERN

__all__ = ["Conversion"]


class ConversionConfig(Strict):
    label: str = Field(
        default="Converted",
        min_length=1,
        max_length=80,
        title=N_("Goal name"),
        description=N_("What counts as success, for reports: 'Booked a demo', 'Purchased'."),
    )
    event_type: str | None = Field(
        default=None,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        title=N_("Reached when event"),
        description=N_(
            "The event that means the goal is met, wherever the customer is in the flow. "
            "Leave empty to reach the goal only through a connection."
        ),
    )
    where: tuple[PropertyFilter, ...] = Field(
        default=(),
        max_length=20,
        title=N_("Only when"),
        description=N_("Conditions on the event's properties; all must hold."),
    )
    stage: Stage | None = Field(
        default=None,
        title=N_("Reached at lifecycle stage"),
        description=N_(
            "The goal is met when the contact reaches this stage, or a later one, "
            "after entering the flow."
        ),
    )
    attribute: str | None = Field(
        default=None,
        max_length=64,
        pattern=KEY_PATTERN,
        title=N_("Reached when attribute"),
        description=N_("The goal is met when the contact's attribute gets the value below."),
    )
    attribute_value: str | None = Field(
        default=None,
        max_length=200,
        title=N_("has the value"),
        description=N_("The value that meets the goal, e.g. pro."),
    )

    @model_validator(mode="after")
    def _attribute_with_value(self) -> ConversionConfig:
        if (self.attribute is None) != (self.attribute_value is None):
            raise invalid(N_("Give both the attribute and the value that meets the goal."))
        return self

    def condition(self) -> dict[str, object] | None:
        """The stage or attribute goal as a rule on the contact (None: neither is set)."""
        clauses: list[dict[str, object]] = []
        if self.stage is not None:
            later = LIFECYCLE_STAGES[LIFECYCLE_STAGES.index(self.stage) :]
            clauses.append(
                {"any": [{"field": "lifecycle_stage", "op": "equals", "value": s} for s in later]}
            )
        if self.attribute is not None:
            clauses.append({"attribute": self.attribute, "value": self.attribute_value})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"all": clauses}


class Conversion(NodeType[ConversionConfig]):
    type_id = "goal.conversion"
    name = N_("Goal")
    description = N_("Counts a conversion and ends the customer's journey.")
    family = Family.goal
    icon = "flag"
    color = "#ca8a04"
    config_model = ConversionConfig
    ports = ()

    @classmethod
    def trigger(cls, config: BaseModel) -> Trigger | None:
        assert isinstance(config, ConversionConfig)
        if config.event_type:
            return Trigger(event_type=config.event_type)
        # Met by a change to the contact: the runtime checks it set-based (runtime.conversions).
        condition = config.condition()
        return Trigger(audience=condition) if condition else None

    @classmethod
    def accepts(cls, config: BaseModel, event: EventRecord, profile: Profile) -> bool:
        assert isinstance(config, ConversionConfig)
        return event_passes(config.where, event)

    async def run(self, ctx: Context[ConversionConfig]) -> Outcome:
        return Outcome.finish(f"goal reached: {ctx.config.label}")
