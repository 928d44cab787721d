"""``POST /api/v1/audiences/count``: how many contacts a rule selects, right now."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from litestar import post
from litestar.exceptions import ValidationException
from litestar.params import JSONBody
from pydantic import BaseModel, Field, field_validator

from backend.api.responses import BODY, errors
from backend.audit import unaudited
from backend.auth.guards import role
from backend.deps import Db, Now
from backend.models import Role
from runtime.rules.ast import InvalidRule, parse_rule
from runtime.rules.sql import count_audience


class AudienceIn(BaseModel):
    rule: dict[str, Any] = Field(
        description='A rule in the rule language, e.g. {"attribute": "city", "type": '
        '"string", "op": "equals", "value": "Malmö"}.'
    )
    timezone: str = Field(default="UTC", max_length=64, description="For day-based conditions.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class AudienceCount(BaseModel):
    count: int


@post(
    "/audiences/count",
    opt=role(Role.viewer) | unaudited("reads only: counts who an audience would select"),
    status_code=200,
    responses=errors(*BODY),
)
async def audience_count(db: Db, clock: Now, data: JSONBody[AudienceIn]) -> AudienceCount:
    """Count the live contacts the rule selects, with the compiler flows use to enroll."""
    try:
        rule = parse_rule(data.rule)
    except InvalidRule as exc:
        raise ValidationException(
            detail=str(exc), extra=[issue.model_dump() for issue in exc.issues]
        ) from exc
    return AudienceCount(
        count=await count_audience(db, rule, now=clock.now(), timezone=data.timezone)
    )


ROUTES = [audience_count]
