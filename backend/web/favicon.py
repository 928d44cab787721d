"""``GET /favicon.ico``: browsers ask for it on every page even when the page names its icon."""

from __future__ import annotations

from litestar import Response, get

from backend.auth.guards import public
from backend.templating import STATIC_DIR

FAVICON = STATIC_DIR / "img" / "favicon.svg"


@get("/favicon.ico", opt=public(), include_in_schema=False)
async def favicon() -> Response[bytes]:
    return Response(
        FAVICON.read_bytes(),
        media_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400"},
    )


ROUTES = [favicon]
