"""What the editor warns about without refusing to publish: who the flow's steps can reach.

A "notify salesperson" step reached by contacts without an owner puts tasks on
nobody's list unless the flow's routing takes them; a marketing message reached
by contacts who never gave consent for its channel will be held back. The forms
that start the flow decide both: their owner or round-robin, and the consent
they ask for; any other trigger may bring contacts without an owner.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.flows.routing import members_of
from backend.i18n import _
from backend.models import Flow, Form, RoutingMember
from nodes.sdk import Family, NodeRegistry

FORM_TRIGGER = "trigger.form_submitted"


async def reach_warnings(
    db: AsyncSession, flow: Flow, registry: NodeRegistry, consent_channels: Mapping[str, str]
) -> list[tuple[str, str]]:
    """``(node id, message)`` for each step that can reach contacts it cannot serve well.

    ``consent_channels`` maps the node types whose marketing needs consent to their
    channel (``editor.channels.consent_channels``, from the channel registry).
    """
    nodes = [n for n in flow.draft_graph.get("nodes", []) if isinstance(n, dict)]
    forms = await _starting_forms(db, nodes)
    warnings: list[tuple[str, str]] = []
    # Steps on the task channel (the built-in "notify salesperson" or a plugin's) need an owner.
    tasks = [n for n in nodes if _channel(registry, n) == "task"]
    if tasks and not await _routed(db, flow):
        owner_warning = await _ownerless(db, nodes, forms, registry)
        warnings += [(str(n.get("id")), owner_warning) for n in tasks if owner_warning]
    for node in nodes:
        node_id, config = str(node.get("id")), node.get("config") or {}
        channel = consent_channels.get(str(node.get("type")))
        if forms and channel and config.get("category", "marketing") == "marketing":
            unasked = [f.name for f in forms if f.consent_channel != channel]
            if unasked:
                warnings.append(
                    (
                        node_id,
                        _(
                            "%(forms)s does not ask for %(channel)s consent, so this marketing "
                            "message would be held back for its contacts."
                        )
                        % {"forms": ", ".join(unasked), "channel": channel},
                    )
                )
    return warnings


async def _starting_forms(db: AsyncSession, nodes: list[dict[str, Any]]) -> list[Form]:
    triggers = [n for n in nodes if n.get("type") == FORM_TRIGGER]
    if not triggers:
        return []
    wanted = [(n.get("config") or {}).get("form_id") for n in triggers]
    stmt = select(Form).where(Form.archived_at.is_(None))
    if None not in wanted:
        stmt = stmt.where(Form.id.in_([i for i in wanted if isinstance(i, int)]))
    return list(await db.scalars(stmt))


async def _routed(db: AsyncSession, flow: Flow) -> bool:
    """Whether the flow's routing takes the tasks of contacts without an owner."""
    return flow.owner_id is not None or bool(await members_of(db, flow_id=flow.id))


async def _ownerless(
    db: AsyncSession, nodes: list[dict[str, Any]], forms: list[Form], registry: NodeRegistry
) -> str:
    """Why contacts without an owner can enter the flow, or "" when none can."""
    others = [
        str(n.get("label") or n.get("id"))
        for n in nodes
        if n.get("type") != FORM_TRIGGER
        and (node_type := registry.get(str(n.get("type")))) is not None
        and node_type.family is Family.trigger
    ]
    if others:
        return _(
            "Contacts who enter through %(steps)s may have no owner, so this task could be "
            "unassigned: choose who takes the tasks on the flow's page."
        ) % {"steps": ", ".join(others)}
    routed_forms = set(
        await db.scalars(
            select(RoutingMember.form_id).where(RoutingMember.form_id.in_([f.id for f in forms]))
        )
    )
    ownerless = [f.name for f in forms if f.owner_id is None and f.id not in routed_forms]
    if not ownerless:
        return ""
    return _(
        "Contacts from %(forms)s have no owner, so this task would be unassigned: choose an "
        "owner on the form, or who takes the tasks on the flow's page."
    ) % {"forms": ", ".join(ownerless)}


def _channel(registry: NodeRegistry, node: dict[str, Any]) -> str | None:
    node_type = registry.get(str(node.get("type")))
    return node_type.channel if node_type is not None else None
