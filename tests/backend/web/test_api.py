"""The public API: bearer API keys, JSON errors, and a schema of its own routes only."""

from __future__ import annotations

from litestar import Litestar, get
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.app import create_app
from backend.auth.guards import role
from backend.auth.keys import hash_api_key
from backend.models import ApiKey, Contact, Role
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import MovableClock, add_api_key, post_form, settings_for

Client = AsyncTestClient[Litestar]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_error(body: dict[str, object], code: str) -> None:
    assert set(body) == {"error"}
    error = body["error"]
    assert isinstance(error, dict)
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]


async def test_no_key_is_refused_with_a_json_error(client: Client) -> None:
    response = await client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["www-authenticate"].startswith("Bearer")
    _assert_error(response.json(), "unauthorized")
    assert "Authorization: Bearer" in response.json()["error"]["message"]


async def test_a_wrong_or_malformed_key_is_refused(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _key, token = await add_api_key(sessions, Role.viewer)
    tampered = token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb")
    for header in (
        _bearer(tampered),
        _bearer("tf_nothing"),
        {"Authorization": token},
        {"Authorization": f"Basic {token}"},
    ):
        response = await client.get("/api/v1/me", headers=header)
        assert response.status_code == 401, header
        _assert_error(response.json(), "unauthorized")


async def test_a_valid_key_is_accepted_and_its_use_recorded(
    client: Client, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    key, token = await add_api_key(sessions, Role.marketer, name="Web shop")
    response = await client.get("/api/v1/me", headers=_bearer(token))
    assert response.status_code == 200
    assert response.json() == {"kind": "api_key", "name": "Web shop", "role": "marketer"}
    async with sessions() as db:
        stored = await db.get(ApiKey, key.id)
    assert stored is not None and stored.last_used_at == clock.now()
    assert stored.key_hash == hash_api_key(token) and token not in stored.key_hash


async def test_a_revoked_key_is_refused(
    client: Client, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    key, token = await add_api_key(sessions, Role.admin)
    async with sessions() as db, db.begin():
        stored = await db.get(ApiKey, key.id)
        assert stored is not None
        stored.revoked_at = clock.now()
    assert (await client.get("/api/v1/me", headers=_bearer(token))).status_code == 401


async def test_a_browser_session_does_not_open_the_api(signed_in: SignedIn) -> None:
    client = await signed_in(Role.admin)
    response = await client.get("/api/v1/me")
    assert response.status_code == 401


async def test_contacts_are_listed_and_fetched(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _key, token = await add_api_key(sessions, Role.viewer)
    async with sessions() as db, db.begin():
        db.add_all(
            [
                Contact(email=f"c{i}@example.com", first_name="Anna" if i == 3 else "Bo")
                for i in range(5)
            ]
        )
    page = (await client.get("/api/v1/contacts?per_page=2", headers=_bearer(token))).json()
    assert page["total"] == 5 and page["per_page"] == 2 and len(page["items"]) == 2
    found = (await client.get("/api/v1/contacts?q=anna", headers=_bearer(token))).json()
    assert [c["email"] for c in found["items"]] == ["c3@example.com"]
    one = await client.get(f"/api/v1/contacts/{found['items'][0]['id']}", headers=_bearer(token))
    assert one.status_code == 200 and one.json()["first_name"] == "Anna"


async def test_api_errors_are_json_with_code_message_and_details(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _key, token = await add_api_key(sessions, Role.viewer)
    missing = await client.get("/api/v1/contacts/999999", headers=_bearer(token))
    assert missing.status_code == 404
    _assert_error(missing.json(), "not_found")
    assert "999999" in missing.json()["error"]["message"]

    bad = await client.get("/api/v1/contacts?page=first", headers=_bearer(token))
    assert bad.status_code == 400
    _assert_error(bad.json(), "bad_request")
    assert bad.json()["error"]["details"]

    nowhere = await client.get("/api/v1/no-such-thing", headers=_bearer(token))
    assert nowhere.status_code == 404
    _assert_error(nowhere.json(), "not_found")


async def test_too_low_a_key_role_is_refused(
    db_url: str, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    @get("/api/v1/admin-only", opt=role(Role.admin))
    async def admin_only() -> dict[str, bool]:
        return {"ok": True}

    app = create_app(settings_for(db_url), extra_routes=[admin_only])
    _key, viewer = await add_api_key(sessions, Role.viewer, name="viewer")
    _key, admin = await add_api_key(sessions, Role.admin, name="admin")
    async with AsyncTestClient(app) as client:
        refused = await client.get("/api/v1/admin-only", headers=_bearer(viewer))
        assert refused.status_code == 403
        _assert_error(refused.json(), "forbidden")
        allowed = await client.get("/api/v1/admin-only", headers=_bearer(admin))
        assert allowed.json() == {"ok": True}


async def test_the_schema_documents_only_the_public_api(client: Client) -> None:
    response = await client.get("/api/schema")
    assert response.status_code == 200
    schema = response.json()
    paths = set(schema["paths"])
    assert "/api/v1/me" in paths and "/api/v1/contacts" in paths
    assert all(path.startswith("/api/v1/") for path in paths), paths
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert (await client.get("/api/schema/openapi.json")).json()["paths"] == schema["paths"]


async def test_an_admin_creates_a_key_that_is_shown_once_and_works(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.admin)
    created = await post_form(
        client, "/settings/api-keys", {"name": "CRM sync", "role": "viewer"}, htmx=True
    )
    assert created.status_code == 200
    assert "shown only once" in created.text
    token = created.text.split('id="new-api-key">')[1].split("<")[0]
    assert token.startswith("tf_")
    assert token not in (await client.get("/settings/api-keys")).text
    # The API ignores the session cookie this client also carries.
    me = await client.get("/api/v1/me", headers=_bearer(token))
    assert me.json()["name"] == "CRM sync"

    async with sessions() as db:
        key = await db.scalar(select(ApiKey))
    assert key is not None
    revoked = await post_form(client, f"/settings/api-keys/{key.id}/revoke", {}, htmx=True)
    assert "revoked" in revoked.text
    assert (await client.get("/api/v1/me", headers=_bearer(token))).status_code == 401
