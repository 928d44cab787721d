"""A node type whose config uses every kind of form field the editor generates."""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, Field

from nodes.sdk import Context, Family, NodeType, Outcome, Port


class Channel(Enum):
    email = "email"
    sms = "sms"


class Delay(BaseModel):
    amount: int = Field(default=2, ge=1)
    unit: Literal["hours", "days"] = "days"


class EveryFieldConfig(BaseModel):
    subject: str = Field(min_length=3, description="What the message is about.")
    hours: int = Field(default=24, ge=1)
    share: float = 0.5
    mode: Literal["fast", "slow"] = "fast"
    channel: Channel = Channel.email
    urgent: bool = False
    tags: list[str] = []
    rule: dict[str, Any] | None = None
    body: str = Field(default="", json_schema_extra={"widget": "textarea"})
    owner: str | None = None
    delay: Delay = Delay()


class EveryField(NodeType[EveryFieldConfig]):
    type_id = "test.every_field"
    name = "Every field"
    description = "Exercises each generated form widget."
    family = Family.condition
    icon = "question"
    color = "#7c3aed"
    config_model = EveryFieldConfig
    ports = (Port("yes", "Yes"), Port("no", "No"))

    async def run(self, ctx: Context[EveryFieldConfig]) -> Outcome:
        return Outcome.go("yes")


EDITOR_TEST_TYPES: list[type[NodeType[Any]]] = [EveryField]
