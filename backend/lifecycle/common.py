"""What every lifecycle page shares: the labels templates show, and refusals as HTTP errors."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import HTTPException

from backend.lifecycle.plan import PlanError
from backend.lifecycle.touchpoints import CATEGORIES, CHANNELS, STATUSES
from backend.web.flows import PHASES


def labels() -> dict[str, Any]:
    return {
        "categories": CATEGORIES,
        "statuses": STATUSES,
        "channels": CHANNELS,
        "flow_phases": {phase.value: label for phase, label in PHASES.items()},
    }


def plan_error(exc: PlanError) -> HTTPException:
    return HTTPException(status_code=exc.status, detail=exc.message)


def wants_json(request: Request[Any, Any, Any]) -> bool:
    return "application/json" in request.headers.get("accept", "")
