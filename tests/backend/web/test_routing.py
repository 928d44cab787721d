"""Follow-up reaches someone: a form's owner takes its new contacts; new forms ask for consent."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Contact, Form, Role, User
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import MovableClock, add_user, post_form
from tests.backend.web.test_forms import answers, make_form


async def test_a_new_form_asks_for_email_consent_by_default(signed_in: SignedIn) -> None:
    client = await signed_in(Role.marketer)
    page = (await client.get("/forms/new")).text
    assert '<option value="email" selected>' in page
    assert "Yes, send me news and offers by email." in page


async def test_the_forms_owner_owns_the_contacts_it_creates(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    client = await signed_in(Role.marketer)
    seller = await add_user(sessions, "sara@example.com", Role.marketer, name="Sara Säljare")
    form = await make_form(sessions)
    page = (await client.get(f"/forms/{form.id}")).text
    assert f'<option value="{seller.id}"' in page and "Sara Säljare" in page
    values = {
        "name": "Sign up",
        "field-0-name": "email",
        "field-0-label": "Email",
        "field-0-type": "email",
        "field-0-target": "email",
        "field-0-required": "on",
        "consent_channel": "",
        "owner_id": str(seller.id),
    }
    saved = await post_form(client, f"/forms/{form.id}", values, form_page=f"/forms/{form.id}")
    assert saved.status_code == 200, saved.text
    async with sessions() as db:
        stored = await db.get(Form, form.id)
        assert stored is not None and stored.owner_id == seller.id

    sent = await client.post("/f/signup", data=answers(clock, email="åke@example.se"))
    assert sent.status_code == 200, sent.text
    async with sessions() as db:
        contact = await db.scalar(select(Contact).where(Contact.email == "åke@example.se"))
        assert contact is not None and contact.owner_id == seller.id
        assert await db.get(User, seller.id) is not None
