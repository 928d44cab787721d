"""The Jinja environment: templates from frontend/templates, gettext, and page helpers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from backend import i18n
from backend.auth.csrf import session_token
from backend.auth.principal import Principal
from backend.i18n import formats
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
    env.filters["number"] = formats.format_number
    env.globals["Role"] = Role
    return env


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    engine = JinjaTemplateEngine.from_environment(create_environment())
    # Replaces Litestar's own csrf_token: ours lives in the session (backend.auth.csrf).
    engine.register_template_callable("csrf_token", _csrf_token)
    engine.register_template_callable("principal", _principal)
    return TemplateConfig(instance=engine)
