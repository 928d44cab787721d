"""The A/B/n split: random-looking, but the same customer always takes the same branch.

The branch comes from a hash of the flow, the customer and the node, never
from ``random()``: a retried step, a re-entry or a second worker all pick the
same branch, and each split node of a flow draws independently of the others.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, Field, model_validator

from nodes.builtin.common import Strict, invalid
from nodes.sdk import N_, Context, Family, NodeType, Outcome, Port

__all__ = ["HOLDOUT", "ABSplit", "bucket"]

HOLDOUT = "holdout"
BUCKETS = 10_000  # basis points: percentages with two decimals


def bucket(flow_id: int, customer: str, node_id: str) -> int:
    """A stable number in ``[0, 10000)`` for this customer at this split node."""
    digest = hashlib.sha256(f"{flow_id}:{customer}:{node_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


class Variant(Strict):
    key: str = Field(
        pattern=r"^[a-z0-9_]{1,20}$",
        title=N_("Branch id"),
        description=N_("A short id for this branch (a, b, c...). Connections use it."),
    )
    label: str = Field(
        default="",
        max_length=60,
        title=N_("Name"),
        description=N_("What the branch tests, shown on the canvas."),
    )
    percent: float = Field(
        gt=0,
        le=100,
        multiple_of=0.01,
        title=N_("Share (%)"),
        description=N_("The share of customers who take this branch."),
    )


def _default_variants() -> list[Variant]:
    return [
        Variant(key="a", label="A", percent=50),
        Variant(key="b", label="B", percent=50),
    ]


class SplitConfig(Strict):
    variants: list[Variant] = Field(
        default_factory=_default_variants,
        min_length=1,
        max_length=10,
        title=N_("Branches"),
        description=N_("Each branch and its share of customers."),
    )
    holdout_percent: float = Field(
        default=0,
        ge=0,
        le=50,
        multiple_of=0.01,
        title=N_("Holdout (%)"),
        description=N_(
            "A share of customers who get none of the branches, to measure what the "
            "flow adds. They leave through 'Holdout'."
        ),
    )

    @model_validator(mode="after")
    def _shares_add_up(self) -> SplitConfig:
        keys = [variant.key for variant in self.variants]
        if len(set(keys)) != len(keys):
            raise invalid(N_("Two branches have the same id; give each its own."))
        if HOLDOUT in keys:
            raise invalid(N_("'holdout' is reserved for the holdout group; pick another id."))
        total = round(sum(v.percent for v in self.variants) + self.holdout_percent, 2)
        if total != 100:
            raise invalid(
                N_("The shares add up to {total}%; branches and holdout must add up to 100%."),
                total=f"{total:g}",
            )
        return self

    def cuts(self) -> list[tuple[str, int]]:
        """Each port with the exclusive upper bound of its bucket range, holdout last."""
        bounds: list[tuple[str, int]] = []
        edge = 0
        for variant in self.variants:
            edge += round(variant.percent * 100)
            bounds.append((variant.key, edge))
        if self.holdout_percent:
            bounds.append((HOLDOUT, BUCKETS))
        # Rounding can leave the last bound a basis point short; the last port takes the rest.
        bounds[-1] = (bounds[-1][0], BUCKETS)
        return bounds


class ABSplit(NodeType[SplitConfig]):
    type_id = "split.ab"
    name = N_("A/B split")
    description = N_(
        "Divides customers between branches by percentage, with an optional holdout. "
        "A customer always gets the same branch."
    )
    family = Family.split
    icon = "split"
    color = "#db2777"
    config_model = SplitConfig

    @classmethod
    def output_ports(cls, config: BaseModel) -> tuple[Port, ...]:
        assert isinstance(config, SplitConfig)
        ports = [Port(v.key, v.label or v.key.upper()) for v in config.variants]
        if config.holdout_percent:
            ports.append(Port(HOLDOUT, N_("Holdout")))
        return tuple(ports)

    async def run(self, ctx: Context[SplitConfig]) -> Outcome:
        customer = f"{ctx.profile.kind}:{ctx.profile.id}"
        drawn = bucket(ctx.journey.flow_id, customer, ctx.journey.node_id)
        port = next(key for key, bound in ctx.config.cuts() if drawn < bound)
        data: dict[str, Any] = {ctx.journey.node_id: {"branch": port}}
        return Outcome.go(port, data=data)
