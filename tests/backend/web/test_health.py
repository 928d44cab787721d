"""``/healthz`` reports the database and Redis, and says 503 when either is down."""

from __future__ import annotations

from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.app import create_app
from tests.backend.web.support import settings_for


async def _health(db_url: str, **overrides: object) -> tuple[int, dict[str, str]]:
    app = create_app(settings_for(db_url, **overrides))
    async with AsyncTestClient(app) as client:
        response = await client.get("/healthz")
    return response.status_code, response.json()


async def test_healthy_without_redis(db_url: str, engine: AsyncEngine) -> None:
    status, body = await _health(db_url)
    assert status == 200
    assert body == {"status": "ok", "database": "ok", "redis": "not configured"}


async def test_healthy_with_redis(db_url: str, engine: AsyncEngine, redis_url: str) -> None:
    status, body = await _health(db_url, redis_url=redis_url)
    assert status == 200
    assert body["redis"] == "ok"


async def test_unreachable_redis_makes_it_unhealthy(db_url: str, engine: AsyncEngine) -> None:
    # Port 9 (discard) is not a Redis on loopback: the connection is refused at once.
    status, body = await _health(db_url, redis_url="redis://127.0.0.1:9/0")
    assert status == 503
    assert body["status"] == "unhealthy"
    assert body["database"] == "ok"
    assert body["redis"].startswith("error")


async def test_unreachable_database_makes_it_unhealthy(tmp_path: object) -> None:
    status, body = await _health("postgresql+asyncpg://postgres@127.0.0.1:9/nothing")
    assert status == 503
    assert body["database"].startswith("error")
    assert body["redis"] == "not configured"
