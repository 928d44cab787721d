"""The goal node: mark a conversion and end the journey.

With an event set, the goal needs no incoming connection: when that event
arrives for a customer anywhere in the flow, the runtime moves their journey
onto the goal (flow setting "exit when the goal is reached"). Reached through
a connection, it ends the journey as converted all the same.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from nodes.builtin.common import Strict
from nodes.builtin.triggers import event_passes
from nodes.sdk import N_, Context, EventRecord, Family, NodeType, Outcome, Profile, Trigger
from runtime.rules import PropertyFilter

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
        return Trigger(event_type=config.event_type) if config.event_type else None

    @classmethod
    def accepts(cls, config: BaseModel, event: EventRecord, profile: Profile) -> bool:
        assert isinstance(config, ConversionConfig)
        return event_passes(config.where, event)

    async def run(self, ctx: Context[ConversionConfig]) -> Outcome:
        return Outcome.finish(f"goal reached: {ctx.config.label}")
