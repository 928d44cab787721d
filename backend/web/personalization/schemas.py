"""Request bodies the snippet sends. Sizes are capped: these endpoints are public."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend.personalization.identify import VISITOR_ID

SLOT = r"^[a-z0-9_-]{1,64}$"
MAX_SLOTS = 20


class PageIn(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    url: str = Field(default="", max_length=2000)
    title: str = Field(default="", max_length=300)
    referrer: str = Field(default="", max_length=2000)


class SnippetIn(BaseModel):
    """What every snippet request carries: the public site key and the visitor's id."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    key: str = Field(min_length=1, max_length=64)
    vid: str = Field(pattern=VISITOR_ID.pattern)
    page: PageIn = Field(default_factory=PageIn)
    utm: dict[str, str] = Field(default_factory=dict, max_length=10)

    @field_validator("utm")
    @classmethod
    def _short_values(cls, value: dict[str, str]) -> dict[str, str]:
        return {k[:40]: v[:200] for k, v in value.items()}


class DecideIn(SnippetIn):
    slots: list[str] = Field(min_length=1, max_length=MAX_SLOTS)

    @field_validator("slots")
    @classmethod
    def _slot_names(cls, value: list[str]) -> list[str]:
        bad = [slot for slot in value if not re.match(SLOT, slot)]
        if bad:
            raise ValueError(
                f"slot names use a-z, 0-9, _ and - (at most 64 characters): {bad[0]!r}"
            )
        return list(dict.fromkeys(value))


class EventIn(SnippetIn):
    type: str = Field(
        default="page.viewed", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$"
    )
    properties: dict[str, Any] = Field(default_factory=dict, max_length=50)
    # A random id per event from the snippet: a retried send is stored once.
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{8,64}$")


class IdentifyVisitorIn(SnippetIn):
    email: str | None = Field(default=None, max_length=320)
    external_id: str | None = Field(default=None, max_length=200)
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    # Proofs (backend.personalization.verify): the site backend's signed token, or an
    # emailed link's tf_verify value.
    token: str | None = Field(default=None, max_length=4096)
    verify: str | None = Field(default=None, max_length=300)
