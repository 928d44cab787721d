"""``/api/v1/flows``: the flows and their status."""

from __future__ import annotations

from litestar import get

from backend.api.schemas import FlowOut
from backend.auth.guards import role
from backend.deps import Db
from backend.models import Role
from backend.services.flows import flow_summaries


@get("/flows", opt=role(Role.viewer))
async def list_flows(db: Db) -> list[FlowOut]:
    """Every flow, most recently changed first."""
    return [FlowOut.model_validate(summary.flow) for summary in await flow_summaries(db)]


ROUTES = [list_flows]
