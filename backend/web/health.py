"""``GET /healthz``: can this process reach its database and Redis?"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import MediaType, Response, get
from litestar.datastructures import State
from sqlalchemy import text

from backend.auth.guards import public

CHECK_TIMEOUT_SECONDS = 3.0


async def _database(state: State) -> str:
    try:
        async with state.sessions() as db:
            await asyncio.wait_for(db.execute(text("SELECT 1")), CHECK_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure is the answer, not an error of this endpoint
        return f"error: {type(exc).__name__}"
    return "ok"


async def _redis(url: str | None) -> str:
    if not url:
        return "not configured"
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT_SECONDS)
    try:
        await asyncio.wait_for(client.ping(), CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    finally:
        await client.aclose()
    return "ok"


@get("/healthz", opt=public(), cache=False)
async def healthz(state: State) -> Response[dict[str, Any]]:
    """200 when the database (and Redis, if configured) answer; 503 otherwise."""
    database, redis = await asyncio.gather(_database(state), _redis(state.settings.redis_url))
    healthy = database == "ok" and redis in ("ok", "not configured")
    return Response(
        content={"status": "ok" if healthy else "unhealthy", "database": database, "redis": redis},
        status_code=200 if healthy else 503,
        media_type=MediaType.JSON,
    )
