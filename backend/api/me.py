"""``GET /api/v1/me``: which key is this? Handy for checking a key works."""

from __future__ import annotations

from litestar import get

from backend.api.responses import AUTH, errors
from backend.api.schemas import Me
from backend.auth.guards import role
from backend.deps import Actor
from backend.models import Role


@get("/me", opt=role(Role.viewer), responses=errors(*AUTH))
async def whoami(actor: Actor) -> Me:
    """The API key making the call and its role."""
    return Me(kind=actor.kind, name=actor.display_name, role=actor.role.value)


ROUTES = [whoami]
