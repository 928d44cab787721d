"""Selection nodes: narrow the flow to an audience.

The audience is a rule (a config field with JSON schema ``format: rule``, for
which the editor shows a live count through ``runtime.rules.count_audience``).
Customers reaching the node who match go on; the others leave the flow. Set-based
enrollment of a whole audience is the schedule trigger's job.
"""

from __future__ import annotations

from pydantic import Field

from nodes.builtin.common import Strict, TimeZoneName
from nodes.builtin.conditions import RecentRule
from nodes.sdk import N_, Context, Family, NodeType, Outcome
from runtime.rules import evaluate

__all__ = ["AudienceFilter"]


class AudienceFilterConfig(Strict):
    audience: RecentRule = Field(
        title=N_("Audience"),
        description=N_("Only customers matching these conditions continue."),
    )
    timezone: TimeZoneName = Field(
        default="UTC",
        title=N_("Time zone"),
        description=N_("Decides which day is 'today' for date conditions."),
    )


class AudienceFilter(NodeType[AudienceFilterConfig]):
    type_id = "selection.audience"
    name = N_("Audience filter")
    description = N_("Keeps only the customers in an audience; everyone else leaves the flow here.")
    family = Family.selection
    icon = "filter"
    color = "#0891b2"
    config_model = AudienceFilterConfig
    needs_events = True

    async def run(self, ctx: Context[AudienceFilterConfig]) -> Outcome:
        config = ctx.config
        if evaluate(
            config.audience, ctx.profile, ctx.events, now=ctx.now, timezone=config.timezone
        ):
            return Outcome.go()
        return Outcome.finish("not in the audience", exited=True)
