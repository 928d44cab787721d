"""The authenticated caller of a request: a signed-in user or an API key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from backend.models import Role


@dataclass(frozen=True)
class Principal:
    """What the role guard and the audit log need to know about the caller."""

    kind: Literal["user", "api_key"]
    id: int
    label: str  # the user's email or the API key's name
    name: str
    role: Role
    locale: str | None = None  # the user's chosen language; None: the browser's
    time_zone: str | None = None  # the user's IANA time zone; None: the workspace's

    def allows(self, needed: Role) -> bool:
        return self.role.allows(needed)

    @property
    def display_name(self) -> str:
        return self.name or self.label
