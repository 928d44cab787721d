"""Forms: the marketer's editor, the hosted page, submissions and their defences."""

from __future__ import annotations

import html
import re
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.app import create_app
from backend.forms.definition import FormDefinition, FormField
from backend.forms.store import apply
from backend.models import AuditEntry, Contact, ContactConsent, Event, Form, Role, SiteKey
from backend.models.ingestion import AttributeDefinition
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import MovableClock, post_form, settings_for

Client = AsyncTestClient[Litestar]

EDITOR_FIELDS = {
    "name": "Whitepaper download",
    "field-0-label": "Email",
    "field-0-name": "email",
    "field-0-type": "email",
    "field-0-target": "email",
    "field-0-required": "1",
    "field-1-label": "City",
    "field-1-name": "city",
    "field-1-type": "text",
    "field-1-target": "attr:city",
    "consent_channel": "email",
    "consent_label": "Send me news",
    "success_message": "Thanks, check your inbox!",
}


async def make_form(
    sessions: async_sessionmaker[AsyncSession], slug: str = "signup", **options: Any
) -> Form:
    definition = FormDefinition(
        name="Sign up",
        fields=[
            FormField(name="email", label="Email", type="email", target="email", required=True),
            FormField(name="name", label="First name", target="first_name"),
            FormField(name="age", label="Age", type="number", target="attr:age"),
        ],
        consent_label="Yes, email me",
        consent_channel="email",
        **options,
    )
    async with sessions() as db, db.begin():
        form = Form(slug=slug)
        apply(form, definition)
        db.add(form)
    return form


async def count(sessions: async_sessionmaker[AsyncSession], model: type, *where: Any) -> int:
    async with sessions() as db:
        return int(await db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def textarea(page: str, element_id: str) -> str:
    match = re.search(rf'<textarea id="{element_id}"[^>]*>(.*?)</textarea>', page, re.S)
    assert match, f"no textarea {element_id}"
    return html.unescape(match.group(1))


def answers(clock: MovableClock, **values: str) -> dict[str, str]:
    """What a person types, having opened the page ten seconds ago."""
    started = clock.now().timestamp() - 10
    return {"form_started_at": f"{started:.0f}", **values}


# -- the editor -------------------------------------------------------------


async def test_marketer_creates_a_form_and_gets_its_embed_code(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.marketer)
    response = await post_form(client, "/forms", EDITOR_FIELDS, form_page="/forms/new")
    assert response.status_code == 303, response.text
    async with sessions() as db:
        form = (await db.scalars(select(Form))).one()
        audit = (await db.scalars(select(AuditEntry.action))).all()
    assert response.headers["location"] == f"/forms/{form.id}"
    assert form.slug == "whitepaper-download"
    assert [f["target"] for f in form.fields] == ["email", "attr:city"]
    assert form.consent_channel == "email"
    assert "form.created" in audit
    page = await client.get(f"/forms/{form.id}")
    assert "http://testserver.local/f/whitepaper-download" in page.text
    iframe = textarea(page.text, "embed-iframe")
    # The snippet on the page finds it by data-touchflow-form and hands it the visitor id.
    assert (
        '<iframe data-touchflow-form src="http://testserver.local/f/whitepaper-download?embed=1"'
        in iframe
    )
    assert "Which embed to use" in page.text
    # The HTML snippet posts to the hosted URL and carries the honeypot.
    snippet = textarea(page.text, "embed-html")
    assert 'action="http://testserver.local/f/whitepaper-download"' in snippet
    assert 'name="website_url"' in snippet and 'name="city"' in snippet


async def test_editing_keeps_the_slug_and_can_add_and_remove_fields(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.marketer)
    form = await make_form(sessions)
    added = await post_form(
        client,
        f"/forms/{form.id}",
        {**EDITOR_FIELDS, "add_field": "1"},
        form_page=f"/forms/{form.id}",
    )
    assert added.status_code == 200
    assert 'name="field-2-label"' in added.text
    changed = {**EDITOR_FIELDS, "name": "Renamed", "field-1-remove": "1"}
    saved = await post_form(client, f"/forms/{form.id}", changed, form_page=f"/forms/{form.id}")
    assert saved.status_code == 200, saved.text
    assert "Saved." in saved.text
    async with sessions() as db:
        stored = await db.get(Form, form.id)
        assert stored is not None
        assert (stored.name, stored.slug) == ("Renamed", "signup")
        assert [f["name"] for f in stored.fields] == ["email"]


async def test_editor_shows_errors_next_to_the_fields(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.marketer)
    bad = {
        **EDITOR_FIELDS,
        "field-1-name": "City Name",
        "redirect_url": "ftp://example.com",
        "consent_label": "",
    }
    response = await post_form(client, "/forms", bad, form_page="/forms/new", htmx=True)
    assert response.status_code == 422
    assert 'id="field-1-name-error"' in response.text
    assert "lowercase letters" in response.text
    assert "http:// or https://" in response.text
    assert 'value="City Name"' in response.text  # what was typed is kept
    no_email = {k: v for k, v in EDITOR_FIELDS.items() if not k.startswith("field-0")}
    response = await post_form(client, "/forms", no_email, form_page="/forms/new")
    assert response.status_code == 422
    assert "stored as the contact&#39;s email" in response.text
    assert await count(sessions, Form) == 0


async def test_viewers_cannot_create_forms(signed_in: SignedIn) -> None:
    client = await signed_in(Role.viewer)
    assert (await client.get("/forms")).status_code == 200
    response = await post_form(client, "/forms", EDITOR_FIELDS, form_page="/forms")
    assert response.status_code == 403


# -- the public side ---------------------------------------------------------


async def test_hosted_page_and_iframe_show_the_form(
    client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await make_form(sessions)
    page = await client.get("/f/signup")
    assert page.status_code == 200
    assert 'name="email"' in page.text and 'name="website_url"' in page.text
    assert "Yes, email me" in page.text
    assert "<h1>Sign up</h1>" in page.text
    assert "set-cookie" not in page.headers  # no cookie for merely seeing a form
    embedded = await client.get("/f/signup?embed=1")
    assert 'action="/f/signup?embed=1"' in embedded.text
    assert "<h1>" not in embedded.text
    assert (await client.get("/f/nope")).status_code == 404


async def test_submission_creates_the_contact_consent_and_one_event(
    client: Client, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    await make_form(sessions)
    data = answers(clock, email="Lisa@Example.com", name="Lisa", age="41", consent="on")
    first = await client.post("/f/signup", data=data)
    assert first.status_code == 200, first.text
    assert "Thank you!" in first.text
    again = await client.post("/f/signup", data=data)  # the double click
    assert again.status_code == 200
    async with sessions() as db:
        contact = (await db.scalars(select(Contact))).one()
        events = (await db.scalars(select(Event))).all()
        consents = (await db.scalars(select(ContactConsent))).all()
    assert (contact.email, contact.first_name, contact.attributes) == (
        "lisa@example.com",
        "Lisa",
        {"age": 41},
    )
    assert contact.consent["email"]["granted"] is True
    assert [(c.channel, c.granted, c.source) for c in consents] == [("email", True, "form:signup")]
    assert len(events) == 1
    event = events[0]
    assert (event.type, event.contact_id, event.source) == (
        "form.submitted",
        contact.id,
        "form:signup",
    )
    assert event.properties["form"] == "signup"
    assert event.properties["fields"] == {"email": "lisa@example.com", "name": "Lisa", "age": 41}


async def test_without_the_consent_box_no_consent_is_recorded(
    client: Client, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    await make_form(sessions)
    response = await client.post("/f/signup", data=answers(clock, email="a@example.com"))
    assert response.status_code == 200
    assert await count(sessions, ContactConsent) == 0
    assert await count(sessions, Event) == 1


async def test_bad_answers_come_back_with_errors_per_field(
    client: Client, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    await make_form(sessions)
    response = await client.post(
        "/f/signup", data=answers(clock, email="not-an-email", name="Bo", age="old")
    )
    assert response.status_code == 422
    assert 'id="tf-email-error"' in response.text
    assert 'id="tf-age-error"' in response.text and "please enter a number" in response.text
    assert 'value="Bo"' in response.text and 'value="not-an-email"' in response.text
    missing = await client.post("/f/signup", data=answers(clock, name="Bo"))
    assert missing.status_code == 422
    assert "please fill in Email" in missing.text
    assert await count(sessions, Contact) == 0
    assert await count(sessions, Event) == 0


async def test_an_answer_of_the_wrong_type_for_a_declared_attribute_is_a_field_error(
    client: Client, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    definition = FormDefinition(
        name="Quiz",
        fields=[
            FormField(name="email", label="Email", target="email", required=True),
            FormField(name="age", label="Age", target="attr:age"),
        ],
    )
    async with sessions() as db, db.begin():
        form = Form(slug="quiz")
        apply(form, definition)
        db.add(form)
        db.add(AttributeDefinition(key="age", type="number"))
    response = await client.post("/f/quiz", data=answers(clock, email="y@example.com", age="old"))
    assert response.status_code == 422, response.text
    assert 'id="tf-age-error"' in response.text
    assert await count(sessions, Contact) == 0


async def test_spam_looks_accepted_but_stores_nothing(
    client: Client, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    await make_form(sessions)
    bot = await client.post(
        "/f/signup", data=answers(clock, email="bot@example.com", website_url="http://spam")
    )
    assert bot.status_code == 200 and "Thank you!" in bot.text
    hasty = {"email": "fast@example.com", "form_started_at": f"{clock.now().timestamp():.0f}"}
    assert (await client.post("/f/signup", data=hasty)).status_code == 200
    assert await count(sessions, Contact) == 0
    assert await count(sessions, Event) == 0


async def test_a_quick_person_just_over_the_minimum_is_not_taken_for_a_bot(
    client: Client, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    await make_form(sessions)
    clock.advance(seconds=0.6)  # the page is served at 09:00:00.6
    page = (await client.get("/f/signup")).text
    started = re.search(r'name="form_started_at" value="([^"]+)"', page)
    assert started is not None
    clock.advance(seconds=2.1)  # they send it 2.1 s later, just over the 2 s minimum
    data = {"email": "quick@example.com", "form_started_at": started.group(1)}
    assert (await client.post("/f/signup", data=data)).status_code == 200
    assert await count(sessions, Contact) == 1


async def test_origin_is_checked_against_site_keys(
    client: Client, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    await make_form(sessions)
    async with sessions() as db, db.begin():
        db.add(SiteKey(name="Shop", key="sk_test", allowed_origins=["https://shop.example"]))
    data = answers(clock, email="o@example.com")
    evil = await client.post("/f/signup", data=data, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403
    assert "only be sent from the sites" in evil.text
    shop = await client.post("/f/signup", data=data, headers={"Origin": "https://shop.example"})
    assert shop.status_code == 200
    ours = await client.post(
        "/f/signup",
        data={**data, "email": "p@example.com"},
        headers={"Origin": "http://testserver.local"},
    )
    assert ours.status_code == 200
    assert await count(sessions, Contact) == 2


async def test_rate_limit_and_size_limit(
    db_url: str, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    # FORM_RATE_LIMIT sets it; a day's window cannot reset in the middle of the test.
    app = create_app(settings_for(db_url, form_rate_limit="2/day"), clock=clock)
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        await _limits(client, sessions, clock)


async def _limits(
    client: Client, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    await make_form(sessions)
    for n in range(2):
        ok = await client.post("/f/signup", data=answers(clock, email=f"r{n}@example.com"))
        assert ok.status_code == 200
    refused = await client.post("/f/signup", data=answers(clock, email="r9@example.com"))
    assert refused.status_code == 429
    assert "Retry-After" in refused.headers
    assert await count(sessions, Contact) == 2
    await make_form(sessions, slug="big")
    huge = await client.post(
        "/f/big", data=answers(clock, email="h@example.com", name="x" * 70_000)
    )
    assert huge.status_code == 413
    assert await count(sessions, Contact) == 2


async def test_redirect_after_submission(
    client: Client, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    await make_form(sessions, redirect_url="https://www.example.com/thanks")
    response = await client.post(
        "/f/signup", data=answers(clock, email="r@example.com"), follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == "https://www.example.com/thanks"
    # In an iframe, the redirect must take the whole page, not the frame.
    assert 'target="_top"' in (await client.get("/f/signup?embed=1")).text
    assert 'target="_top"' not in (await client.get("/f/signup")).text


async def test_double_opt_in_records_consent_only_on_confirmation(
    client: Client, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    from backend.models import OutboxMessage

    await make_form(sessions, double_opt_in=True)
    data = answers(clock, email="d@example.com", consent="on")
    response = await client.post("/f/signup", data=data)
    assert response.status_code == 200
    assert "Click the link" in response.text
    await client.post("/f/signup", data=data)  # double click: still one email
    async with sessions() as db:
        messages = (await db.scalars(select(OutboxMessage))).all()
        contact = (await db.scalars(select(Contact))).one()
    assert contact.consent == {}
    assert len(messages) == 1
    assert messages[0].payload["to"] == "d@example.com"
    link = re.search(
        r"http://testserver\.local(/f/confirm\?token=\S+)", messages[0].payload["text"]
    )
    assert link, messages[0].payload["text"]
    token = link.group(1).split("token=")[1]

    page = await client.get(link.group(1))
    assert page.status_code == 200 and 'name="token"' in page.text
    assert await count(sessions, ContactConsent) == 0  # opening the link is not confirming
    tampered = await client.post("/f/confirm", data={"token": token[:-2] + "xx"})
    assert tampered.status_code == 404
    confirmed = await client.post("/f/confirm", data={"token": token})
    assert confirmed.status_code == 200
    assert "confirmed" in confirmed.text
    async with sessions() as db:
        consents = (await db.scalars(select(ContactConsent))).all()
        types = sorted((await db.scalars(select(Event.type))).all())
    assert [(c.channel, c.granted, c.source) for c in consents] == [
        ("email", True, "form:signup:double-opt-in")
    ]
    assert types == ["form.confirmed", "form.submitted"]

    clock.advance(days=8)
    expired = await client.get(link.group(1))
    assert expired.status_code == 404
    assert "expired" in expired.text


async def test_archived_forms_stop_taking_submissions(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    form = await make_form(sessions)
    client = await signed_in(Role.marketer)
    page = f"/forms/{form.id}"
    archived = await post_form(client, f"{page}/archive", {}, form_page=page)
    assert archived.status_code == 303 and archived.headers["location"] == "/forms"
    assert (await client.get("/f/signup")).status_code == 404
    refused = await client.post("/f/signup", data=answers(clock, email="late@example.com"))
    assert refused.status_code == 404
    assert "Sign up" not in (await client.get("/forms")).text
    assert await count(sessions, Contact) == 0
