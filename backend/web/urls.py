"""The address people reach Touchflow at, for links and embed codes shown on pages."""

from __future__ import annotations

from typing import Any

from litestar import Request

__all__ = ["public_base_url"]


def public_base_url(request: Request[Any, Any, Any]) -> str:
    """``BASE_URL`` when set, else the scheme and host this request came in on (no slash)."""
    settings = request.app.state.settings
    if settings.base_url_set:
        return str(settings.base_url).rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}"
