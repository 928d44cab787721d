"""Rendering pages and htmx fragments, and redirecting in a way htmx understands."""

from __future__ import annotations

from typing import Any

from jinja2_fragments.litestar import HTMXBlockTemplate
from litestar import Request, Response
from litestar.response import Redirect, Template

HTMX_HEADER = "hx-request"


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get(HTMX_HEADER) == "true"


def render(
    request: Request[Any, Any, Any],
    template: str,
    context: dict[str, Any] | None = None,
    *,
    block: str | None = None,
    status_code: int = 200,
) -> Template:
    """The whole page, or only ``block`` of it when htmx asks (jinja2-fragments)."""
    context = context or {}
    if block is not None and is_htmx(request):
        return HTMXBlockTemplate(
            template_name=template, block_name=block, context=context, status_code=status_code
        )
    return Template(template_name=template, context=context, status_code=status_code)


def redirect(request: Request[Any, Any, Any], url: str) -> Response[Any]:
    """303 for a plain form post; for htmx a header so the browser navigates as a whole."""
    if is_htmx(request):
        return Response(content=b"", status_code=200, headers={"HX-Redirect": url})
    return Redirect(path=url, status_code=303)


def safe_next(url: str | None, default: str = "/flows") -> str:
    """Only local paths are followed after sign-in (no open redirect to another site)."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return default
    return url
