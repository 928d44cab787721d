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
    config model changes incompatibly and teach ``upgrade`` to turn the old
    config into the new (graphs store each node's version with its config, and
    the runtime upgrades old ones when it publishes or loads a flow).
    ``ports`` are the static output ports;
    override ``output_ports`` when they depend on the config (split percentages).
    Trigger nodes also override ``trigger`` (and ``accepts`` for event filters).
    Actions that send declare their ``channel``.
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
    # The outbox channel an action's messages go on ("email", "sms", a plugin's), or
    # None. The editor asks that channel how to preview the step and whether marketing
    # on it needs the contact's consent, so a plugin channel's steps get the same tools.
    channel: ClassVar[str | None] = None

    @classmethod
    def parse_config(cls, raw: dict[str, Any] | None) -> BaseModel:
        """Validate raw JSON config; raises ``pydantic.ValidationError`` with per-field errors."""
        return cls.config_model.model_validate(raw or {})

    @classmethod
    def upgrade(cls, config: dict[str, Any], version: int) -> dict[str, Any]:
        """Turn a raw config stored at ``version`` into one for ``version + 1``.

        Called once per step (a v1 config on a v3 type: ``upgrade(c, 1)``, then
        ``upgrade(c, 2)``). The default keeps the config as it is, which is right
        when a new version only added fields with defaults. Raise ``ValueError``
        with a message a marketer understands when a config cannot be carried over.
        """
        return config

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


class ConfigTooNew(ValueError):
    """A stored config says it is newer than the installed node type."""


def upgrade_config(
    node_type: type[NodeType[Any]], config: dict[str, Any], version: int | None
) -> dict[str, Any]:
    """``config`` stored at ``version`` (None: stored before versions were kept, so 1),
    upgraded step by step to ``node_type.version``.

    Raises ``ConfigTooNew`` when the stored version is newer than the type (an older
    package was installed), or what the type's ``upgrade`` raises.
    """
    stored = version or 1
    if stored > node_type.version:
        raise ConfigTooNew(
            f"this step was saved by version {stored} of {node_type.type_id}, but version "
            f"{node_type.version} is installed"
        )
    for step in range(stored, node_type.version):
        config = node_type.upgrade(dict(config), step)
    return config
