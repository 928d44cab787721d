"""The node contract: a config model, output ports, and ``async run(ctx) -> Outcome``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Generic

from pydantic import BaseModel, ConfigDict

from nodes.sdk.context import ConfigT, Context
from nodes.sdk.types import NEXT, EventRecord, Family, Outcome, Port, Profile, Trigger


class EmptyConfig(BaseModel):
    """For node types with nothing to configure."""

    model_config = ConfigDict(extra="forbid")


class NodeType(ABC, Generic[ConfigT]):
    """Subclass this to add a node type. Declare the class attributes and ``run``.

    ``type_id`` is stable forever (flows store it); bump ``version`` when the
    config model changes incompatibly. ``ports`` are the static output ports;
    override ``output_ports`` when they depend on the config (split percentages).
    Trigger nodes also override ``trigger`` (and ``accepts`` for event filters).
    """

    type_id: ClassVar[str]
    version: ClassVar[int] = 1
    name: ClassVar[str]
    description: ClassVar[str] = ""
    family: ClassVar[Family]
    icon: ClassVar[str] = "circle"
    color: ClassVar[str] = "#64748b"
    config_model: ClassVar[type[BaseModel]] = EmptyConfig
    ports: ClassVar[tuple[Port, ...]] = (NEXT,)
    # Loading a customer's recent events costs a query; only nodes that read
    # ``ctx.events`` (rule conditions, engagement checks) ask for them.
    needs_events: ClassVar[bool] = False

    @classmethod
    def parse_config(cls, raw: dict[str, Any] | None) -> BaseModel:
        """Validate raw JSON config; raises ``pydantic.ValidationError`` with per-field errors."""
        return cls.config_model.model_validate(raw or {})

    @classmethod
    def output_ports(cls, config: BaseModel) -> tuple[Port, ...]:
        return cls.ports

    @classmethod
    def trigger(cls, config: BaseModel) -> Trigger | None:
        """For trigger nodes: how customers enter. Other families return None."""
        return None

    @classmethod
    def accepts(cls, config: BaseModel, event: EventRecord, profile: Profile) -> bool:
        """For event triggers: does this event (for this customer) start a journey?"""
        return True

    @abstractmethod
    async def run(self, ctx: Context[ConfigT]) -> Outcome:
        """Decide what happens to the journey at this node. Pure apart from ``ctx``."""
