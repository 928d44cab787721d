"""Schemathesis against /api/schema: generated requests, valid and invalid, on both databases.

Cases are drawn first (Hypothesis, generation only), then sent in order to the
in-process app through the test client on one database that keeps what earlier
calls stored, so later reads, starts and deletes meet real rows (a sequence of
calls, not only lone ones). Every response must be below 500 and match the
schema: its status code documented, its body the documented shape.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from litestar import Litestar
from litestar.testing import AsyncTestClient
from schemathesis import checks
from schemathesis.generation import GenerationMode
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Contact, Role
from tests.backend.web.support import add_api_key

Client = AsyncTestClient[Litestar]
# Per operation and mode: enough to find the edges, small enough for `make test`.
EXAMPLES = 25
# The response checks (the ones that send more requests of their own need a network server).
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.negative_data_rejection,
]


def _draw(operation: Any, mode: GenerationMode) -> list[Any]:
    drawn: list[Any] = []

    @given(operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def collect(case: Any) -> None:
        drawn.append(case)

    collect()
    return drawn


async def _seed(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as db, db.begin():
        db.add_all(Contact(email=f"kund{n}@example.se", first_name="Åsa") for n in range(1, 6))


async def test_generated_requests_get_no_server_error_and_match_the_schema(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _seed(sessions)
    _key, token = await add_api_key(sessions, Role.admin)
    raw = (await client.get("/api/schema/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(raw)
    failures: list[str] = []
    sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for n, case in enumerate(_draw(operation, mode)):
                kwargs = case.as_transport_kwargs(base_url="http://testserver.local")
                headers = dict(kwargs.get("headers") or {})
                # Most calls carry a real key, so they reach the handler; every 5th keeps
                # the generated (mostly wrong) one to cover the 401s.
                if n % 5 and "Authorization" in headers:
                    headers["Authorization"] = f"Bearer {token}"
                body: dict[str, Any] = {}
                if "json" in kwargs:
                    body["json"] = kwargs["json"]
                elif kwargs.get("data") is not None:
                    body["content"] = kwargs["data"]
                response = await client.request(
                    kwargs["method"],
                    kwargs["url"],
                    params=kwargs.get("params"),
                    headers=headers,
                    **body,
                )
                sent += 1
                try:
                    case.validate_response(response, headers=headers, checks=CHECKS)
                except (Exception, BaseExceptionGroup) as exc:  # one report per run
                    found = getattr(exc, "exceptions", [exc])
                    failures.append(
                        f"{operation.label} [{mode.value}] {kwargs['url']} {body} "
                        f"-> {response.status_code} {response.text[:200]}: "
                        + "; ".join(
                            f"{getattr(f, 'title', '')} {getattr(f, 'message', f)}" for f in found
                        )
                    )
    assert sent >= 12 * EXAMPLES
    assert not failures, f"{len(failures)} of {sent} failed:\n" + "\n".join(failures[:25])
