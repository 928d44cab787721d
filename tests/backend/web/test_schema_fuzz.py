"""Schemathesis against /api/schema: generated requests, valid and invalid, on both databases.

Stateless: cases are drawn first (Hypothesis, generation only), then sent to the
in-process app through the test client, on seeded rows, so reads and deletes
meet real contacts. Drawing is four fifths of the run, so a process draws each
schema's cases once and sends the same ones to both databases (the scheduler
deals both runs to one worker: tests/support/schedule.py). Stateful:
Schemathesis' state machine chains calls along links (identify, then read,
export, erase...), each scenario from the same seed.
Every response must be below 500 and match the schema: its status code
documented, its body the documented shape.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from litestar import Litestar
from litestar.testing import AsyncTestClient
from schemathesis import checks
from schemathesis.core.transport import Response
from schemathesis.generation import GenerationMode
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.models import Contact, Role
from tests.backend.web.support import add_api_key
from tests.support.stores import truncate_all

pytestmark = pytest.mark.long

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
# Chained calls always carry a real key, so a case meant to go without one is accepted.
STATEFUL_CHECKS = [c for c in CHECKS if c is not checks.negative_data_rejection]


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


# Cases drawn in this process, by the schema's digest, operation and mode.
_DRAWN: dict[tuple[str, str, str], list[Any]] = {}


def _drawn(digest: str, operation: Any, mode: GenerationMode) -> list[Any]:
    key = (digest, operation.label, mode.value)
    if key not in _DRAWN:
        _DRAWN[key] = _draw(operation, mode)
    return _DRAWN[key]


async def _seed(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as db, db.begin():
        db.add_all(Contact(email=f"kund{n}@example.se", first_name="Åsa") for n in range(1, 6))


async def test_generated_requests_get_no_server_error_and_match_the_schema(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _seed(sessions)
    _key, token = await add_api_key(sessions, Role.admin)
    raw = (await client.get("/api/schema/openapi.json")).json()
    digest = hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()
    schema = schemathesis.openapi.from_dict(raw)
    failures: list[str] = []
    sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for n, case in enumerate(_drawn(digest, operation, mode)):
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


# Where one call's answer names what the next may act on. Schemathesis follows these
# links to chain calls: identify a contact, then read, export, erase it, start a flow.
_CONTACT = {"contact_id": "$response.body#/contact_id"}
LINKS = {
    ("/api/v1/identify", "post", "200"): {
        "Read": ("GetContact", _CONTACT),
        "Export": ("ExportContact", _CONTACT),
        "Erase": ("EraseContact", _CONTACT),
    },
    ("/api/v1/contacts", "get", "200"): {
        "ReadFirst": ("GetContact", {"contact_id": "$response.body#/items/0/id"}),
    },
    ("/api/v1/flows", "get", "200"): {
        "Start": ("StartFlow", {"flow_id": "$response.body#/0/id"}),
    },
}
OPERATION_IDS = {
    ("/api/v1/contacts/{contact_id}", "get"): "GetContact",
    ("/api/v1/contacts/{contact_id}/export", "get"): "ExportContact",
    ("/api/v1/contacts/{contact_id}", "delete"): "EraseContact",
    ("/api/v1/flows/{flow_id}/start", "post"): "StartFlow",
}


def _with_links(raw: dict[str, Any]) -> dict[str, Any]:
    for (path, method), operation_id in OPERATION_IDS.items():
        raw["paths"][path][method]["operationId"] = operation_id
    for (path, method, status), links in LINKS.items():
        response = raw["paths"][path][method]["responses"][status]
        response["links"] = {
            name: {"operationId": target, "parameters": parameters}
            for name, (target, parameters) in links.items()
        }
    return raw


async def test_chained_calls_get_no_server_error_and_match_the_schema(
    client: Client, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Schemathesis' stateful run: sequences of linked calls, each answer checked."""
    await _seed(sessions)
    _key, token = await add_api_key(sessions, Role.admin)
    raw = (await client.get("/api/schema/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(_with_links(raw))
    loop = asyncio.get_running_loop()
    sent: list[tuple[str, int]] = []
    failures: list[str] = []

    def send(case: Any) -> Any:
        kwargs = case.as_transport_kwargs(base_url="http://testserver.local")
        # Every chained call carries the key (the stateless run covers calls without one).
        headers = {**(kwargs.get("headers") or {}), "Authorization": f"Bearer {token}"}
        body: dict[str, Any] = {}
        if "json" in kwargs:
            body["json"] = kwargs["json"]
        elif kwargs.get("data") is not None:
            body["content"] = kwargs["data"]
        request = client.request(
            kwargs["method"], kwargs["url"], params=kwargs.get("params"), headers=headers, **body
        )
        # The state machine runs in a thread; the app answers on the test's event loop.
        response = asyncio.run_coroutine_threadsafe(request, loop).result(timeout=60)
        sent.append((case.operation.label, response.status_code))
        return Response.from_any(response)

    async def fresh() -> None:
        nonlocal token
        await truncate_all(engine)
        await _seed(sessions)
        _key, token = await add_api_key(sessions, Role.admin)

    class Chained(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Each scenario starts from the same rows, so the same calls get the same
            # answers (Hypothesis replays scenarios and needs them to repeat).
            asyncio.run_coroutine_threadsafe(fresh(), loop).result(timeout=60)

        def call(self, case: Any, **kwargs: Any) -> Any:
            return send(case)

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            # Its key is real even where the case meant none: no negative-data check here.
            # Collected, not raised: a replay would not repeat (the database remembers).
            try:
                case.validate_response(response, checks=STATEFUL_CHECKS)
            except (Exception, BaseExceptionGroup) as exc:
                found = getattr(exc, "exceptions", [exc])
                failures.append(
                    f"{case.operation.label} {case.path_parameters} {case.body!r:.200} -> "
                    f"{response.status_code} {response.text[:200]}: "
                    + "; ".join(str(getattr(f, "title", f)) for f in found)
                )

    run = settings(
        max_examples=EXAMPLES,
        stateful_step_count=6,
        database=None,
        deadline=None,
        # No shrinking: the database remembers earlier runs, so a replay would not repeat.
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    await asyncio.to_thread(Chained.run, settings=run)
    assert not failures, f"{len(failures)} of {len(sent)} failed:\n" + "\n".join(failures[:25])
    # The links were followed: contacts the run created were read and erased.
    reads = {
        ("GET /api/v1/contacts/{contact_id}", 200),
        ("GET /api/v1/contacts/{contact_id}/export", 200),
    }
    assert reads & set(sent), sorted(set(sent))
    assert ("DELETE /api/v1/contacts/{contact_id}", 204) in sent, sorted(set(sent))
