"""Contact actions: update attributes, add or remove tags, set the lifecycle stage.

They return ``ContactChanges``; the runtime writes them in the step's
transaction, and later nodes of the same walk already see the new values.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from nodes.builtin.common import Strict, Template, invalid, merge_values, render
from nodes.sdk import N_, ContactChanges, Context, Family, NodeType, Outcome

__all__ = ["LIFECYCLE_STAGES", "SetLifecycle", "TagContact", "UpdateContact"]

CONTACT_COLOR = "#0d9488"
AttributeKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")]
TagName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]
Value = Template | int | float | bool


class UpdateConfig(Strict):
    set_attributes: dict[AttributeKey, Value] = Field(
        default_factory=dict,
        max_length=50,
        title=N_("Set"),
        description=N_(
            "Attributes to set. Text may use merge fields, e.g. {{ trigger.plan }} copies "
            "a value from the event that started the flow."
        ),
    )
    unset_attributes: list[AttributeKey] = Field(
        default_factory=list,
        max_length=50,
        title=N_("Clear"),
        description=N_("Attributes to remove from the contact."),
    )

    @model_validator(mode="after")
    def _something_to_do(self) -> UpdateConfig:
        if not self.set_attributes and not self.unset_attributes:
            raise invalid(N_("Choose at least one attribute to set or clear."))
        both = set(self.set_attributes) & set(self.unset_attributes)
        if both:
            raise invalid(
                N_("{names} is both set and cleared; choose one."), names=", ".join(sorted(both))
            )
        return self


class UpdateContact(NodeType[UpdateConfig]):
    type_id = "action.update_contact"
    name = N_("Update contact")
    description = N_("Sets or clears attributes on the contact's profile.")
    family = Family.action
    icon = "user-pen"
    color = CONTACT_COLOR
    config_model = UpdateConfig

    async def run(self, ctx: Context[UpdateConfig]) -> Outcome:
        values = merge_values(ctx)
        updates = {
            key: render(value, values) if isinstance(value, str) else value
            for key, value in ctx.config.set_attributes.items()
        }
        changes = ContactChanges(
            set_attributes=updates, unset_attributes=tuple(ctx.config.unset_attributes)
        )
        return Outcome.go(changes=changes)


class TagConfig(Strict):
    add: list[TagName] = Field(
        default_factory=list,
        max_length=20,
        title=N_("Add tags"),
        description=N_("Tags to add to the contact."),
    )
    remove: list[TagName] = Field(
        default_factory=list,
        max_length=20,
        title=N_("Remove tags"),
        description=N_("Tags to take off the contact."),
    )

    @model_validator(mode="after")
    def _something_to_do(self) -> TagConfig:
        if not self.add and not self.remove:
            raise invalid(N_("Choose at least one tag to add or remove."))
        both = set(self.add) & set(self.remove)
        if both:
            raise invalid(
                N_("{names} is both added and removed; choose one."),
                names=", ".join(sorted(both)),
            )
        return self


class TagContact(NodeType[TagConfig]):
    type_id = "action.tag"
    name = N_("Add or remove tags")
    description = N_("Tags the contact, for example 'webinar-2030', or removes tags.")
    family = Family.action
    icon = "tag"
    color = CONTACT_COLOR
    config_model = TagConfig

    async def run(self, ctx: Context[TagConfig]) -> Outcome:
        changes = ContactChanges(
            add_tags=tuple(ctx.config.add), remove_tags=tuple(ctx.config.remove)
        )
        return Outcome.go(changes=changes)


# In funnel order: "only move forward" compares positions in this list.
LIFECYCLE_STAGES = (
    "subscriber",
    "lead",
    "marketing_qualified",
    "sales_qualified",
    "opportunity",
    "customer",
    "evangelist",
)
Stage = Literal[
    "subscriber",
    "lead",
    "marketing_qualified",
    "sales_qualified",
    "opportunity",
    "customer",
    "evangelist",
]


class LifecycleConfig(Strict):
    stage: Stage = Field(
        default="lead",
        title=N_("Lifecycle stage"),
        description=N_("The stage to move the contact to."),
    )
    only_forward: bool = Field(
        default=True,
        title=N_("Only move forward"),
        description=N_("Leave contacts who are already at a later stage where they are."),
    )


class SetLifecycle(NodeType[LifecycleConfig]):
    type_id = "action.lifecycle"
    name = N_("Set lifecycle stage")
    description = N_("Moves the contact along the funnel: lead, customer...")
    family = Family.action
    icon = "trending-up"
    color = CONTACT_COLOR
    config_model = LifecycleConfig

    async def run(self, ctx: Context[LifecycleConfig]) -> Outcome:
        target = ctx.config.stage
        current = ctx.profile.lifecycle_stage
        if (
            ctx.config.only_forward
            and current in LIFECYCLE_STAGES
            and LIFECYCLE_STAGES.index(current) >= LIFECYCLE_STAGES.index(target)
        ):
            return Outcome.go(data={ctx.journey.node_id: {"kept": current}})
        return Outcome.go(changes=ContactChanges(lifecycle_stage=target))
