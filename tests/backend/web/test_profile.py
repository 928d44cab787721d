"""Each user's language and time zone (the profile), and the browser's language on public pages."""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Flow, Role, User
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import post_form
from tests.backend.web.test_forms import make_form

Client = AsyncTestClient[Litestar]


async def test_a_user_chooses_swedish_and_their_time_zone(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.marketer)
    async with sessions() as db, db.begin():
        db.add(Flow(name="Välkomstflöde", created_at=datetime(2026, 11, 27, 13, 48, tzinfo=UTC)))
    page = await client.get("/flows")
    assert ">Flows<" in page.text and 'lang="en"' in page.text

    saved = await post_form(
        client, "/profile", {"locale": "sv", "time_zone": "Europe/Stockholm"}, form_page="/profile"
    )
    assert saved.status_code == 303, saved.text
    async with sessions() as db:
        user = await db.scalar(select(User).where(User.email == "marketer@example.com"))
        assert user is not None and (user.locale, user.time_zone) == ("sv", "Europe/Stockholm")

    # The profile wins over the browser's English.
    page = await client.get("/flows", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert 'lang="sv"' in page.text
    assert ">Flöden<" in page.text and "Nytt flöde" in page.text
    detail = await client.get("/flows/1")
    assert "27 nov. 2026 14:48 CET" in detail.text  # Stockholm time, Swedish month


async def test_the_profile_refuses_an_unknown_language_or_zone(signed_in: SignedIn) -> None:
    client = await signed_in(Role.viewer)
    bad_locale = await post_form(client, "/profile", {"locale": "xx"}, form_page="/profile")
    assert bad_locale.status_code == 400 and "Choose one of the languages." in bad_locale.text
    bad_zone = await post_form(
        client, "/profile", {"time_zone": "Mars/Olympus"}, form_page="/profile"
    )
    assert bad_zone.status_code == 400 and "Europe/Stockholm" in bad_zone.text


async def test_public_pages_speak_the_browsers_language(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await make_form(sessions)
    english = await client.get("/f/signup")
    swedish = await client.get("/f/signup", headers={"Accept-Language": "sv-SE,sv;q=0.9,en;q=0.5"})
    assert 'lang="en"' in english.text
    assert 'lang="sv"' in swedish.text
    empty = await client.post(
        "/f/signup", data={}, headers={"Accept-Language": "sv-SE"}, follow_redirects=False
    )
    assert empty.status_code == 422
    assert 'class="field-error"' in empty.text and "fyll i" in empty.text  # the validation message
