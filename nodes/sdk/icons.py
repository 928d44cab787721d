"""The icons a node type may name (``NodeType.icon``), and the glyph the canvas draws for each.

``check_declaration`` refuses any other name (the canvas would draw the node's
initial instead, silently). Names follow common icon sets, with a few aliases.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["ICONS", "ICON_NAMES"]

ICONS: Mapping[str, str] = MappingProxyType(
    {
        "circle": "●",
        "bolt": "⚡",
        "form": "▤",
        "mail": "✉",
        "email": "✉",
        "envelope": "✉",
        "sms": "✆",
        "message": "✆",
        "phone": "☎",
        "clock": "◷",
        "timer": "◷",
        "hourglass": "◴",
        "calendar": "▦",
        "branch": "⋔",
        "split": "⇉",
        "filter": "▽",
        "question": "?",
        "condition": "◇",
        "task": "☑",
        "check": "✓",
        "tag": "#",
        "user": "☺",
        "globe": "◍",
        "webhook": "⇄",
        "flag": "⚑",
        "goal": "⚑",
        "target": "◎",
        "stop": "■",
        "eye": "◉",
        "bell": "◔",
        "clipboard-check": "▤",
        "users": "☷",
        "calendar-clock": "▦",
        "code": "{}",
        "git-branch": "⋔",
        "mail-check": "✉",
        "message-square": "✆",
        "message-circle": "✆",
        "phone-call": "☎",
        "user-pen": "✎",
        "trending-up": "↗",
        "layout": "▣",
    }
)
ICON_NAMES = frozenset(ICONS)
