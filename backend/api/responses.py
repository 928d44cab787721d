"""The API's error body and status codes, as the OpenAPI schema documents them.

Every error under /api is ``{"error": {"code", "message", "details"}}``
(``backend.errors``); ``errors(...)`` documents that body for each status a
route can answer, replacing Litestar's own ``{status_code, detail}`` entry.
"""

from __future__ import annotations

from typing import Any

from litestar.openapi.datastructures import ResponseSpec
from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable: not_found, validation_failed ...")
    message: str = Field(description="A sentence for a person, in the caller's language.")
    details: Any = Field(
        default=None, description="What exactly was wrong (the field, the limit), or null."
    )


class ErrorBody(BaseModel):
    error: ErrorDetail


_WHEN = {
    400: "The request is malformed or a value is invalid or out of range.",
    401: "No API key, or an unknown or revoked one.",
    403: "The API key's role may not do this.",
    404: "There is nothing with that id.",
    409: "The request conflicts with the current state.",
    413: "The body is larger than this endpoint accepts.",
    415: "The body is not JSON.",
    429: "Too many requests; retry after the Retry-After header's seconds.",
}

# Every route behind an API key can answer these.
AUTH = (401, 403)
# And every route that reads a body or parameters these.
INPUT = (400, *AUTH)
BODY = (*INPUT, 413, 415)


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """``responses=`` for a route: the error body under each of ``statuses``."""
    return {
        status: ResponseSpec(
            data_container=ErrorBody, description=_WHEN[status], generate_examples=False
        )
        for status in sorted(set(statuses))
    }
