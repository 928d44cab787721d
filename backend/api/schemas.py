"""Request and response bodies of the public API (they become its OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class Me(BaseModel):
    kind: str
    name: str
    role: str


class FlowOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    phase: str
    status: str
    published_version_id: int | None
    updated_at: datetime


class ContactOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    external_id: str | None
    email: str | None
    phone: str | None
    first_name: str
    last_name: str
    attributes: dict[str, Any]
    tags: list[str]
    lifecycle_stage: str
    owner_id: int | None
    created_at: datetime
    updated_at: datetime


class ContactPage(BaseModel):
    items: list[ContactOut]
    page: int
    per_page: int
    total: int
