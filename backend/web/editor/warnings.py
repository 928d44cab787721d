"""What the editor warns about without refusing to publish: who the flow's steps can reach.

A "notify salesperson" step reached by contacts without an owner puts tasks on
nobody's list; a marketing message reached by contacts who never gave consent
for its channel will be held back. Both are decided by the forms that start
the flow: their owner and the consent they ask for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.i18n import _
from backend.models import Form

FORM_TRIGGER = "trigger.form_submitted"


async def reach_warnings(
    db: AsyncSession, graph: dict[str, Any], consent_channels: Mapping[str, str]
) -> list[tuple[str, str]]:
    """``(node id, message)`` for each step that can reach contacts it cannot serve well.

    ``consent_channels`` maps the node types whose marketing needs consent to their
    channel (``editor.channels.consent_channels``, from the channel registry).
    """
    nodes = [n for n in graph.get("nodes", []) if isinstance(n, dict)]
    triggers = [n for n in nodes if n.get("type") == FORM_TRIGGER]
    if not triggers:
        return []
    wanted = [(n.get("config") or {}).get("form_id") for n in triggers]
    stmt = select(Form).where(Form.archived_at.is_(None))
    if None not in wanted:
        stmt = stmt.where(Form.id.in_([i for i in wanted if isinstance(i, int)]))
    forms = list(await db.scalars(stmt))
    if not forms:
        return []
    warnings: list[tuple[str, str]] = []
    for node in nodes:
        node_id, config = str(node.get("id")), node.get("config") or {}
        if node.get("type") == "action.task":
            ownerless = [f.name for f in forms if f.owner_id is None]
            if ownerless:
                warnings.append(
                    (
                        node_id,
                        _(
                            "Contacts from %(forms)s have no owner, so this task would be "
                            "unassigned: choose an owner on the form."
                        )
                        % {"forms": ", ".join(ownerless)},
                    )
                )
        channel = consent_channels.get(str(node.get("type")))
        if channel and config.get("category", "marketing") == "marketing":
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
