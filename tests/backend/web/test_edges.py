"""Bad input at the edges gets a clear 4xx in the documented error body, never a 500.

One test per cause a fuzz run of the API found (issue 12), on both databases.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.inbound import sign
from backend.models import Contact, Event, ImportJob, Role
from backend.validation import MAX_ID
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import MovableClock, add_api_key, csrf_token
from tests.backend.web.test_imports import upload
from tests.backend.web.test_inbound_hooks import SOURCE_SECRET, make_source

Client = AsyncTestClient[Litestar]

TOO_BIG = "99999999999999999999"  # past 2^63 - 1, the widest integer either database stores
DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture
def uploads(app: Litestar, tmp_path: Path) -> Path:
    app.state.import_dir = tmp_path
    return tmp_path


async def _key(sessions: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    _key, token = await add_api_key(sessions, Role.admin)
    return {"Authorization": f"Bearer {token}"}


def _refused(response: Any, status: int = 400) -> str:
    """The documented error body; returns its message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    message: str = body["error"]["message"]
    assert message and "Traceback" not in message
    return message


async def _count(sessions: async_sessionmaker[AsyncSession], model: Any) -> int:
    async with sessions() as db:
        return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def test_page_number_past_the_database_integer_range_is_a_400(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    auth = await _key(sessions)
    _refused(await client.get(f"/api/v1/contacts?page={TOO_BIG}", headers=auth))
    assert (await client.get("/api/v1/contacts?page=3", headers=auth)).status_code == 200


async def test_ids_past_the_database_integer_range_are_a_400_on_read_export_and_delete(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    auth = await _key(sessions)
    for method, path in [
        ("GET", f"/api/v1/contacts/{TOO_BIG}"),
        ("GET", f"/api/v1/contacts/{TOO_BIG}/export"),
        ("DELETE", f"/api/v1/contacts/{TOO_BIG}"),
        ("POST", f"/api/v1/flows/{TOO_BIG}/start"),
    ]:
        _refused(await client.request(method, path, headers=auth, json={"contact_id": 1}))
    _refused(
        await client.post("/api/v1/flows/1/start", headers=auth, json={"contact_id": int(TOO_BIG)})
    )
    _refused(
        await client.post(
            "/api/v1/track", headers=auth, json={"type": "x", "contact_id": int(TOO_BIG)}
        )
    )


async def test_an_id_past_the_range_on_a_page_is_a_400_not_an_error_page(
    signed_in: SignedIn,
) -> None:
    client = await signed_in(Role.admin)
    response = await client.get(f"/contacts/{TOO_BIG}")
    assert response.status_code == 400
    assert "out of range" in response.text


async def test_start_with_an_invalid_email_is_a_400(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    auth = await _key(sessions)
    message = _refused(
        await client.post("/api/v1/flows/1/start", headers=auth, json={"email": "not an address"})
    )
    assert "not a valid email address" in message


async def test_start_for_an_unknown_visitor_is_a_404(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    auth = await _key(sessions)
    response = await client.post(
        "/api/v1/flows/1/start", headers=auth, json={"visitor_id": "never-seen"}
    )
    assert "No such visitor" in _refused(response, 404)


async def test_occurred_at_before_year_one_in_utc_is_refused(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    auth = await _key(sessions)
    event = {"type": "page.viewed", "email": "åsa@example.se"}
    response = await client.post(
        "/api/v1/track", headers=auth, json={**event, "occurred_at": "0001-01-01T00:00:00+14:00"}
    )
    assert "between 1900-01-01 and 9998-12-31" in _refused(response)
    batch = await client.post(
        "/api/v1/batch/track",
        headers=auth,
        json={"items": [{**event, "occurred_at": "9999-12-31T23:59:59-14:00"}]},
    )
    assert batch.status_code == 202 and batch.json()["rejected"] == 1
    assert await _count(sessions, Event) == 0


async def test_occurred_at_of_the_wrong_type_is_refused_on_track(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    auth = await _key(sessions)
    event = {"type": "page.viewed", "email": "åsa@example.se"}
    for wrong in (1_700_000_000, True, ["2026-03-02T09:00:00Z"], "2026-03-02"):
        response = await client.post(
            "/api/v1/track", headers=auth, json={**event, "occurred_at": wrong}
        )
        assert "ISO 8601 date-time" in _refused(response), wrong
    ok = await client.post(
        "/api/v1/track", headers=auth, json={**event, "occurred_at": "2026-03-02T09:00:00+01:00"}
    )
    assert ok.status_code == 202, ok.text
    assert await _count(sessions, Event) == 1


async def test_a_body_that_is_not_utf8_is_a_400(
    client: Client, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    auth = await _key(sessions)
    body = b'{"type": "x", "email": "\xe5sa@example.se"}'  # Latin-1 å
    headers = {**auth, "Content-Type": "application/json"}
    for path in ("/api/v1/identify", "/api/v1/track", "/api/v1/flows/1/start"):
        assert "not valid UTF-8" in _refused(await client.post(path, content=body, headers=headers))
    await make_source(sessions)
    hook = await client.post("/hooks/in/tok123", content=body, headers=_signed(body, clock))
    assert "not valid UTF-8" in _refused(hook)
    assert await _count(sessions, Contact) == 0


async def test_a_text_with_nul_is_a_400(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    auth = await _key(sessions)
    identify = await client.post(
        "/api/v1/identify", headers=auth, json={"email": "a@example.se", "first_name": "Å\x00"}
    )
    assert "NUL" in _refused(identify)
    _refused(await client.get("/api/v1/contacts", params={"q": "å\x00"}, headers=auth))
    assert await _count(sessions, Contact) == 0


def _signed(body: bytes, clock: MovableClock) -> dict[str, str]:
    stamp = int(clock.now().timestamp())
    return {
        "X-Touchflow-Signature": sign(SOURCE_SECRET, stamp, body),
        "Content-Type": "application/json",
    }


async def test_json_nested_100000_deep_is_a_400_on_the_api_and_inbound_hooks(
    client: Client, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    auth = await _key(sessions)
    headers = {**auth, "Content-Type": "application/json"}
    for path in ("/api/v1/track", "/api/v1/batch/track", "/api/v1/flows/1/start"):
        assert "deeper than 32 levels" in _refused(
            await client.post(path, content=DEEP, headers=headers)
        )
    # Shallow enough for the decoder, still too deep to be a real payload.
    properties = b'{"type": "x", "email": "a@example.se", "properties": ' + b'{"a": ' * 40
    properties += b"1" + b"}" * 41
    _refused(await client.post("/api/v1/track", content=properties, headers=headers))
    await make_source(sessions)
    hook = await client.post("/hooks/in/tok123", content=DEEP, headers=_signed(DEEP, clock))
    assert "deeper than 32 levels" in _refused(hook)
    assert await _count(sessions, Event) == 0


async def test_bodies_over_the_size_limit_are_a_413_in_the_error_body(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    auth = await _key(sessions)
    big = {"type": "x", "email": "a@example.se", "properties": {"blob": "å" * 300_000}}
    _refused(await client.post("/api/v1/track", json=big, headers=auth), 413)


async def test_a_csv_field_over_10000_characters_is_refused_at_upload(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession], uploads: Path
) -> None:
    client = await signed_in(Role.marketer)
    token = await csrf_token(client, "/imports/new")
    rows = ["email;note"] + [f"p{n}@example.se;kort" for n in range(30)]
    rows.append("sist@example.se;" + "å" * 10_001)  # past the preview's rows
    response = await client.post(
        "/imports",
        files={"file": ("people.csv", "\n".join(rows).encode(), "text/csv")},
        data={"csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 400
    assert "at most 10,000 characters" in response.text


async def test_a_csv_field_over_10000_characters_is_refused_at_import_start(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession], uploads: Path
) -> None:
    client = await signed_in(Role.marketer)
    rows = "".join(f"p{n}@example.se;kort\n" for n in range(30))  # more than the preview shows
    location = await upload(client, f"email;note\n{rows}".encode())
    # The file changes on disk between upload and start (the upload check cannot see it).
    async with sessions() as db:
        job = (await db.scalars(select(ImportJob))).one()
    with open(job.path, "ab") as handle:
        handle.write(("bo@example.se;" + "ö" * 10_001 + "\n").encode())
    token = await csrf_token(client, location)
    started = await client.post(
        f"{location}/start",
        data={"csrf_token": token, "map-0": "email", "map-1": "", "mode": "upsert"},
        follow_redirects=False,
    )
    assert started.status_code == 422
    assert "at most 10,000 characters" in started.text
    assert await _count(sessions, Contact) == 0


async def test_options_lists_every_method_of_the_path(client: Client) -> None:
    response = await client.options("/api/v1/contacts/1")
    assert response.status_code == 204
    assert response.headers["allow"] == "DELETE, GET, OPTIONS"
    wrong = await client.put("/api/v1/contacts/1")
    assert wrong.status_code == 405
    assert set(wrong.headers["allow"].split(", ")) == {"DELETE", "GET", "OPTIONS"}


async def test_the_schema_documents_the_error_body_and_each_status(client: Client) -> None:
    schema = (await client.get("/api/schema/openapi.json")).json()
    operations = schema["paths"]

    def statuses(path: str, method: str) -> set[str]:
        return set(operations[path][method]["responses"])

    assert statuses("/api/v1/contacts/{contact_id}", "delete") == {
        "204",
        "400",
        "401",
        "403",
        "404",
    }
    assert {"401", "403", "404", "409", "413"} <= statuses("/api/v1/flows/{flow_id}/start", "post")
    assert {"400", "401", "403", "413"} <= statuses("/api/v1/track", "post")
    for path, item in operations.items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorBody"), (path, method, status)
    body = schema["components"]["schemas"]["ErrorBody"]
    assert body["required"] == ["error"]
    contact_id = operations["/api/v1/contacts/{contact_id}"]["get"]["parameters"][0]["schema"]
    assert contact_id["maximum"] == MAX_ID and float(MAX_ID) == MAX_ID


async def test_every_api_path_lists_its_documented_methods_in_allow(client: Client) -> None:
    schema = (await client.get("/api/schema/openapi.json")).json()
    for template, item in schema["paths"].items():
        path = re.sub(r"\{\w+\}", "1", template)
        documented = {m.upper() for m in item if m in ("get", "post", "put", "patch", "delete")}
        options = await client.options(path)
        assert set(options.headers["allow"].split(", ")) == documented | {"OPTIONS"}, template
        other = next(m for m in ("PUT", "PATCH", "DELETE", "POST") if m not in documented)
        refused = await client.request(other, path)
        assert refused.status_code == 405, template
        assert refused.json()["error"]["code"] == "method_not_allowed"
