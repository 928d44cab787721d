"""The Jinja environment: templates from frontend/templates, gettext, and page helpers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from backend import assets, i18n
from backend.auth.csrf import session_token
from backend.auth.principal import Principal
from backend.i18n import formats
from backend.i18n.problems import graph_problem
from backend.models import Role

FRONTEND_DIR = Path(__file__).resolve().parent.parent / "frontend"
TEMPLATES_DIR = FRONTEND_DIR / "templates"
STATIC_DIR = FRONTEND_DIR / "static"
HTMX_FILE = STATIC_DIR / "vendor" / "htmx.min.js"


def _request_scope(ctx: Mapping[str, Any]) -> dict[str, Any]:
    request = ctx.get("request")
    return request.scope if request is not None else {}


def _csrf_token(ctx: Mapping[str, Any]) -> str:
    session = _request_scope(ctx).get("session")
    return session_token(session) if isinstance(session, dict) else ""


def _principal(ctx: Mapping[str, Any]) -> Principal | None:
    user = _request_scope(ctx).get("user")
    return user if isinstance(user, Principal) else None


def _datetime(value: datetime | str | None, fmt: str = "") -> str:
    """A time in the reader's language and time zone (``fmt``: ``"seconds"`` or ``"date"``)."""
    if fmt == "date" and isinstance(value, datetime):
        return formats.format_date(value)
    return formats.format_datetime(value, seconds=fmt == "seconds")


_SECRET_KEYS = frozenset({"secret", "password", "token", "authorization", "api_key"})
_ANSWER = re.compile(r"(HTTP \d{3}): .*", re.DOTALL)


def _masked(payload: Any) -> Any:
    """A message payload for display: signing secrets and credentials replaced by dots.

    Secrets are shown once, where they are created; a page that lists what was sent
    never repeats them.
    """
    if isinstance(payload, Mapping):
        return {
            k: ("••••••••" if str(k).lower() in _SECRET_KEYS and v else _masked(v))
            for k, v in payload.items()
        }
    if isinstance(payload, list):
        return [_masked(v) for v in payload]
    return payload


def _provider_answer(text: str | None, full: bool = False) -> str:
    """What a provider or webhook receiver answered, trimmed to its status unless ``full``.

    The answer of a system Touchflow called can carry that system's data; admins
    see it whole, everyone else sees the status line.
    """
    if not text:
        return ""
    return text if full else _ANSWER.sub(r"\1", text)


def asset_url(path: str) -> str:
    """The versioned address of a file under frontend/static (see backend/assets.py)."""
    return assets.url(STATIC_DIR, path)


def create_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["datetime"] = _datetime
    env.filters["masked"] = _masked
    env.filters["provider_answer"] = _provider_answer
    env.filters["number"] = formats.format_number
    env.filters["day"] = formats.format_day
    env.filters["percent"] = formats.format_percent
    env.filters["problem"] = graph_problem
    env.globals["Role"] = Role
    env.globals["asset"] = asset_url
    return env


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    engine = JinjaTemplateEngine.from_environment(create_environment())
    # Replaces Litestar's own csrf_token: ours lives in the session (backend.auth.csrf).
    engine.register_template_callable("csrf_token", _csrf_token)
    engine.register_template_callable("principal", _principal)
    return TemplateConfig(instance=engine)
