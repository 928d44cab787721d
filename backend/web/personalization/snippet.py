"""The snippet file: a content-hashed URL cached for a year, and the old unversioned one."""

from __future__ import annotations

import hashlib
import html
from typing import Any

from litestar import Request, Response, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.params import FromPath
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from backend.auth.guards import public
from backend.templating import STATIC_DIR
from backend.web.urls import public_base_url

__all__ = ["ANTI_FLICKER_MS", "embed_code", "hashed_snippet", "snippet_router", "snippet_url"]

SNIPPET_FILE = STATIC_DIR / "snippet" / "touchflow.js"
# Embed codes name the content-hashed URL, which never changes meaning: a year, immutable.
HASHED_CACHE = "public, max-age=31536000, immutable"
# Embeds from before the hashed URL: an update reaches them within the hour.
SNIPPET_CACHE = CacheControlHeader(public=True, max_age=3600, stale_while_revalidate=86_400)

_loaded: tuple[float, bytes, str] | None = None


def _snippet() -> tuple[bytes, str]:
    """The snippet's bytes and content hash (read again when the file changes)."""
    global _loaded
    mtime = SNIPPET_FILE.stat().st_mtime
    if _loaded is None or _loaded[0] != mtime:
        content = SNIPPET_FILE.read_bytes()
        _loaded = (mtime, content, hashlib.sha256(content).hexdigest()[:16])
    return _loaded[1], _loaded[2]


# The embed code's hard cap on hiding the slots: past it the page's own content shows.
ANTI_FLICKER_MS = 800


def embed_code(snippet_src: str, site_key: str, *, hide_ms: int = ANTI_FLICKER_MS) -> str:
    """What a site pastes into its ``<head>``: hide only the slots (capped), then the snippet.

    The style is inline so the slots are hidden from the first paint, before the
    async script has even loaded; the snippet removes it once they are filled.
    """
    return (
        '<style id="touchflow-hide">[data-touchflow-slot]{visibility:hidden!important}</style>\n'
        "<script>setTimeout(function(){"
        'var s=document.getElementById("touchflow-hide");if(s)s.remove()'
        f"}},{hide_ms})</script>\n"
        f'<script async src="{html.escape(snippet_src)}" '
        f'data-site-key="{html.escape(site_key)}"></script>'
    )


def snippet_url(request: Request[Any, Any, Any]) -> str:
    """The content-hashed snippet URL for embed codes."""
    return f"{public_base_url(request)}/snippet/{_snippet()[1]}/touchflow.js"


@get("/snippet/{digest:str}/touchflow.js", opt=public(), include_in_schema=False)
async def hashed_snippet(digest: FromPath[str]) -> Response[bytes] | Redirect:
    """The snippet under its content hash; an old hash is sent on to the current one."""
    content, current = _snippet()
    if digest != current:
        return Redirect(
            path=f"/snippet/{current}/touchflow.js",
            status_code=302,
            headers={"Cache-Control": "no-cache"},
        )
    return Response(
        content,
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": HASHED_CACHE, "Access-Control-Allow-Origin": "*"},
    )


def snippet_router() -> Router:
    """``/static/snippet/touchflow.js`` (unversioned, an hour's cache) and the hashed URL."""
    static = create_static_files_router(
        path="/static/snippet",
        directories=[STATIC_DIR / "snippet"],
        cache_control=SNIPPET_CACHE,
        opt=public(),
        name="snippet",
    )
    return Router(path="/", route_handlers=[static, hashed_snippet])
