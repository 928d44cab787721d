"""Settings > Node types: every installed node type with its package, and what failed to load.

A ``type_id`` offered by two installed packages is refused for both
(``nodes.sdk.registry``); this page is where an admin sees why a step type
disappeared and which package to uninstall.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template

from backend.auth.guards import role
from backend.models import Role
from backend.web.messaging.common import runtime
from backend.web.render import render


@get("/settings/node-types", opt=role(Role.admin))
async def node_types_page(request: Request[Any, Any, Any]) -> Template:
    registry = runtime(request).registry
    types = sorted(registry, key=lambda t: t.type_id)
    return render(
        request,
        "admin/node_types.html",
        {
            "nav": "settings",
            "tab": "node-types",
            "types": [(t, registry.origin(t.type_id)) for t in types],
            "errors": registry.errors,
        },
    )


ROUTES = [node_types_page]
