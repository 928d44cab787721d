"""Pickers for config fields that refer to something: names to choose from, the id kept underneath.

A node type marks such a field in its config model with ``json_schema_extra``
``{"format": kind}`` (``node``, ``form``, ``content_block``, ``user``, ``flow``);
the panel then offers the existing things of that kind by name instead of a
box for a number or an internal id.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.i18n import _
from backend.models import ContentBlock, Flow, Form, User
from backend.web.editor.fields import ConfigField
from backend.web.editor.view import CanvasView

# value, name, what is shown under the name (the id, a kind)
Option = tuple[str, str, str]


async def load_options(db: AsyncSession, fields: list[ConfigField]) -> dict[str, list[Option]]:
    """The database's choices for the kinds these fields refer to (nodes come from the canvas)."""
    kinds = {f.ref for f in fields if f.ref}
    options: dict[str, list[Option]] = {}
    if "form" in kinds:
        rows = await db.execute(
            select(Form.id, Form.name).where(Form.archived_at.is_(None)).order_by(Form.name)
        )
        options["form"] = [(str(i), name, f"#{i}") for i, name in rows]
    if "content_block" in kinds:
        rows = await db.execute(
            select(ContentBlock.id, ContentBlock.name)
            .where(ContentBlock.archived_at.is_(None))
            .order_by(ContentBlock.name)
        )
        options["content_block"] = [(str(i), name, f"#{i}") for i, name in rows]
    if "user" in kinds:
        users = await db.execute(
            select(User.id, User.name, User.email).where(User.is_active).order_by(User.name)
        )
        options["user"] = [(str(u.id), u.name or u.email, u.email) for u in users]
    if "flow" in kinds:
        rows = await db.execute(select(Flow.id, Flow.name).order_by(Flow.name))
        options["flow"] = [(str(i), name, f"#{i}") for i, name in rows]
    return options


def node_options(canvas: CanvasView, node_id: str) -> list[Option]:
    """The other steps of this flow that do something (actions), by label."""
    return [
        (n.id, n.label or n.type_name, f"{n.type_name} · {n.id}")
        for n in canvas.nodes
        if n.id != node_id and n.family == "action"
    ]


def with_options(
    fields: list[ConfigField], options: dict[str, Any], canvas: CanvasView, node_id: str
) -> list[ConfigField]:
    """``fields`` with each picker's options; a stale id stays chosen, marked as gone."""
    filled = []
    for f in fields:
        if not f.ref:
            filled.append(f)
            continue
        choices = node_options(canvas, node_id) if f.ref == "node" else options.get(f.ref, [])
        if f.value and f.value not in {value for value, _name, _sub in choices}:
            gone = _("%(id)s (no longer exists)") % {"id": f.value}
            choices = [(f.value, gone, f.value), *choices]
        filled.append(replace(f, options=tuple(choices)))
    return filled
