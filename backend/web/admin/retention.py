"""Settings > Data retention: what the worker prunes, after how long, and what it always keeps.

The ages come from the settings (``RETENTION_*`` in the environment), so the
page only reads them; the pruning itself is ``runtime.retention``.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template

from backend.auth.guards import role
from backend.models import Role
from backend.web.messaging.common import runtime
from backend.web.render import render


@get("/settings/retention", opt=role(Role.admin))
async def retention_page(request: Request[Any, Any, Any]) -> Template:
    watermarks = runtime(request).retention_watermarks
    return render(
        request,
        "admin/retention.html",
        {
            "nav": "settings",
            "tab": "retention",
            "settings": request.app.state.settings,
            # A rollup registered for a table keeps the charts whole past its age.
            "summarised": sorted(watermarks),
        },
    )


ROUTES = [retention_page]
