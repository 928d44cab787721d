"""Condition nodes: send each customer down "yes" or "no".

Both evaluate the rule language in Python against the customer's profile and
recent events (``ctx.events``: up to 90 days), exactly as an audience would
select them in SQL.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from nodes.builtin.common import Strict, TimeZoneName, invalid
from nodes.sdk import EVENT_HISTORY_DAYS, N_, Context, Family, NodeType, Outcome, Port
from runtime.rules import (
    ENGAGEMENT_EVENTS,
    AllOf,
    AnyOf,
    EngagementCondition,
    EventCondition,
    NotRule,
    PropertyFilter,
    Rule,
    RuleField,
    evaluate,
)

__all__ = ["YES_NO", "EngagementCheck", "RecentRule", "RuleCondition"]

CONDITION_COLOR = "#7c3aed"
YES_NO = (Port("yes", N_("Yes")), Port("no", N_("No")))


def _windows(rule: Rule) -> list[int | None]:
    if isinstance(rule, AllOf | AnyOf):
        children = rule.all if isinstance(rule, AllOf) else rule.any
        return [days for child in children for days in _windows(child)]
    if isinstance(rule, NotRule):
        return _windows(rule.negated)
    if isinstance(rule, EventCondition | EngagementCondition):
        return [rule.within_days]
    return []


def _within_history(rule: Rule) -> Rule:
    # A node sees the customer's last EVENT_HISTORY_DAYS of events; a longer (or
    # unbounded) window would quietly miss older events, so it is refused up front.
    if any(days is None or days > EVENT_HISTORY_DAYS for days in _windows(rule)):
        raise invalid(
            N_(
                "In a flow, event conditions look at the last {days} days: set 'within the "
                "last N days' to {days} or less on each of them."
            ),
            days=EVENT_HISTORY_DAYS,
        )
    return rule


RecentRule = Annotated[RuleField, AfterValidator(_within_history)]
"""A rule judged per customer in a flow: its event conditions stay within the loaded history."""


class RuleConfig(Strict):
    rule: RecentRule = Field(
        title=N_("Conditions"),
        description=N_("Contact fields, attributes and past events the customer must match."),
    )
    timezone: TimeZoneName = Field(
        default="UTC",
        title=N_("Time zone"),
        description=N_("Decides which day is 'today' for date conditions."),
    )


class RuleCondition(NodeType[RuleConfig]):
    type_id = "condition.rule"
    name = N_("If / else")
    description = N_("Splits customers by their data and behaviour: matching ones go to 'Yes'.")
    family = Family.condition
    icon = "git-branch"
    color = CONDITION_COLOR
    config_model = RuleConfig
    ports = YES_NO
    needs_events = True

    async def run(self, ctx: Context[RuleConfig]) -> Outcome:
        matched = evaluate(
            ctx.config.rule, ctx.profile, ctx.events, now=ctx.now, timezone=ctx.config.timezone
        )
        return Outcome.go("yes" if matched else "no")


class EngagementConfig(Strict):
    engagement: Literal["opened", "clicked"] = Field(
        default="opened",
        title=N_("Engagement"),
        description=N_("Whether the customer opened the email, or clicked a link in it."),
    )
    node_id: str = Field(
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        title=N_("Email node"),
        description=N_("The email step of this flow whose message is checked."),
        json_schema_extra={"format": "node"},
    )
    within_days: int | None = Field(
        default=None,
        ge=0,
        le=90,
        title=N_("Within the last days"),
        description=N_("Only count engagement from the last N days. Empty means any time."),
    )


class EngagementCheck(NodeType[EngagementConfig]):
    type_id = "condition.engagement"
    name = N_("Opened or clicked?")
    description = N_(
        "Checks whether the customer opened (or clicked) the email sent by an earlier "
        "step of this journey."
    )
    family = Family.condition
    icon = "mail-check"
    color = CONDITION_COLOR
    config_model = EngagementConfig
    ports = YES_NO
    needs_events = True

    async def run(self, ctx: Context[EngagementConfig]) -> Outcome:
        config = ctx.config
        # A click proves the open even when the reader's client blocked the open pixel.
        kinds = ["opened", "clicked"] if config.engagement == "opened" else ["clicked"]
        # Tracking events carry the journey and node of the message they are about.
        rules = [
            EventCondition(
                event=ENGAGEMENT_EVENTS[kind],
                where=(
                    PropertyFilter(property="journey_id", type="number", value=ctx.journey.id),
                    PropertyFilter(property="node_id", value=config.node_id),
                ),
                within_days=config.within_days,
            )
            for kind in kinds
        ]
        matched = any(evaluate(rule, ctx.profile, ctx.events, now=ctx.now) for rule in rules)
        return Outcome.go("yes" if matched else "no")
