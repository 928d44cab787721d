"""Reading any page's posted HTML form: the values as typed and the errors per field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from litestar import Request


@dataclass
class Posted:
    """The submitted values (as typed, for re-display) and the errors per field."""

    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str:
        return self.values.get(name, "").strip()

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, message)

    @property
    def ok(self) -> bool:
        return not self.errors


async def read_posted(request: Request[Any, Any, Any]) -> Posted:
    data = await request.form()
    return Posted({key: value for key, value in data.items() if isinstance(value, str)})
