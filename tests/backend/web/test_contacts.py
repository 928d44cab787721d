"""Contacts UI: rule filters, CSV export of the filter, the contact page, edit, GDPR."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import (
    AuditEntry,
    Contact,
    ContactConsent,
    Event,
    Flow,
    FlowVersion,
    Journey,
    Role,
    User,
)
from backend.models.ingestion import AttributeDefinition
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import MovableClock, post_form


async def people(sessions: async_sessionmaker[AsyncSession], clock: MovableClock) -> dict[str, int]:
    """Three contacts: two in Malmö (ages 30 and 52), one in Lund who filled in a form."""
    async with sessions() as db, db.begin():
        db.add_all(
            [
                AttributeDefinition(key="city", type="string"),
                AttributeDefinition(key="age", type="number"),
            ]
        )
        anna = Contact(
            email="anna@example.com",
            first_name="Anna",
            attributes={"city": "Malmö", "age": 30},
            tags=["vip"],
        )
        bo = Contact(
            email="bo@example.com", first_name="Bo", attributes={"city": "Malmö", "age": 52}
        )
        cia = Contact(email="cia@example.com", first_name="=cmd()", attributes={"city": "Lund"})
        db.add_all([anna, bo, cia])
        await db.flush()
        db.add(
            Event(
                type="form.submitted",
                contact_id=cia.id,
                properties={"form": "signup"},
                occurred_at=clock.now() - timedelta(days=2),
            )
        )
        return {"anna": anna.id, "bo": bo.id, "cia": cia.id}


async def test_filter_builder_and_rule_json_select_contacts(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    ids = await people(sessions, clock)
    client = await signed_in(Role.viewer)
    async with sessions() as db, db.begin():
        owner = User(email="sam@example.com", name="Sam Sales", role="marketer", password_hash="x")
        db.add(owner)
        await db.flush()
        (await db.get_one(Contact, ids["anna"])).owner_id = owner.id
    listing = await client.get("/contacts")
    assert listing.status_code == 200 and "Sam Sales" in listing.text, "owners are listed"
    malmo = (
        await client.get("/contacts", params={"key": "city", "op": "equals", "value": "malmö"})
    ).text
    assert "2 contacts" in malmo
    assert "anna@example.com" in malmo and "cia@example.com" not in malmo
    older = await client.get("/contacts", params={"key": "age", "op": "gt", "value": "40"})
    assert "1 contact" in older.text and "bo@example.com" in older.text
    rule = json.dumps({"event": "form.submitted", "within_days": 7})
    submitted = (await client.get("/contacts", params={"rule": rule})).text
    assert "1 contact" in submitted and "cia@example.com" in submitted
    both = await client.get(
        "/contacts",
        params={"key": "tags", "op": "contains", "value": "vip", "rule": rule},
    )
    assert "0 contacts" in both.text or "No contact matches" in both.text
    searched = (
        await client.get(
            "/contacts", params={"q": "bo", "key": "city", "op": "equals", "value": "Malmö"}
        )
    ).text
    assert "bo@example.com" in searched and "anna@example.com" not in searched


async def test_bad_filters_say_what_is_wrong(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    await people(sessions, clock)
    client = await signed_in(Role.viewer)
    unknown = await client.get("/contacts", params={"key": "shoe_size", "op": "gt", "value": "4"})
    assert unknown.status_code == 422
    assert "no attribute “shoe_size”" in unknown.text
    wrong_op = await client.get("/contacts", params={"key": "age", "op": "contains", "value": "4"})
    assert wrong_op.status_code == 422 and "does not apply to age" in wrong_op.text
    not_number = await client.get("/contacts", params={"key": "age", "op": "gt", "value": "old"})
    assert "is not a number" in not_number.text
    broken = await client.get("/contacts", params={"rule": "{not json"})
    assert broken.status_code == 422 and "not valid JSON" in broken.text
    bad_rule = await client.get("/contacts", params={"rule": json.dumps({"field": "shoe"})})
    assert bad_rule.status_code == 422 and "Rule:" in bad_rule.text


async def test_csv_export_streams_the_current_filter(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    await people(sessions, clock)
    client = await signed_in(Role.marketer)
    everyone = await client.get("/contacts/export.csv")
    assert everyone.status_code == 200
    assert everyone.headers["content-type"].startswith("text/csv")
    assert "attachment" in everyone.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(everyone.text)))
    assert sorted(r["email"] for r in rows) == [
        "anna@example.com",
        "bo@example.com",
        "cia@example.com",
    ]
    by_email = {r["email"]: r for r in rows}
    assert by_email["anna@example.com"]["age"] == "30"
    assert by_email["anna@example.com"]["tags"] == "vip"
    assert by_email["cia@example.com"]["first_name"] == "'=cmd()"  # no formula injection
    filtered = await client.get(
        "/contacts/export.csv", params={"key": "city", "op": "equals", "value": "Lund"}
    )
    assert [r["email"] for r in csv.DictReader(io.StringIO(filtered.text))] == ["cia@example.com"]
    bad = await client.get("/contacts/export.csv", params={"rule": "[]"})
    assert bad.status_code == 400
    async with sessions() as db:
        actions = (await db.scalars(select(AuditEntry.action))).all()
    assert actions.count("contacts.exported") == 2
    viewer_refused = await (await signed_in(Role.viewer)).get("/contacts/export.csv")
    assert viewer_refused.status_code == 403


async def test_contact_page_shows_profile_consent_timeline_and_journeys(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    ids = await people(sessions, clock)
    async with sessions() as db, db.begin():
        flow = Flow(name="Welcome series", phase="onboard", status="active")
        db.add(flow)
        await db.flush()
        version = FlowVersion(flow_id=flow.id, number=1, graph={"nodes": [], "edges": []})
        db.add(version)
        await db.flush()
        db.add(
            Journey(
                flow_id=flow.id,
                flow_version_id=version.id,
                contact_id=ids["cia"],
                status="waiting",
                node_id="wait_2_days",
            )
        )
        db.add(
            ContactConsent(
                contact_id=ids["cia"], channel="email", granted=True, source="form:signup"
            )
        )
    client = await signed_in(Role.viewer)
    page = await client.get(f"/contacts/{ids['cia']}")
    assert page.status_code == 200
    text = page.text
    assert "cia@example.com" in text and "Lund" in text
    assert "form.submitted" in text and "Welcome series" in text and "wait_2_days" in text
    assert "form:signup" in text
    assert "Erase (GDPR)" not in text  # viewers see, they do not erase
    assert (await client.get("/contacts/999999")).status_code == 404


async def test_marketer_edits_attributes_with_errors_per_field(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    ids = await people(sessions, clock)
    client = await signed_in(Role.marketer)
    page = f"/contacts/{ids['anna']}"
    base = {
        "first_name": "Anna",
        "last_name": "Berg",
        "phone": "070-123 45 67",
        "lifecycle_stage": "customer",
        "tags": "vip, newsletter",
        "attr-0-key": "age",
        "attr-0-value": "31",
        "attr-1-key": "city",
        "attr-1-value": "",
        "attr-2-key": "shoe_size",
        "attr-2-value": "42",
    }
    saved = await post_form(client, page, base, htmx=True, form_page=page)
    assert saved.status_code == 200, saved.text
    assert "Saved." in saved.text
    async with sessions() as db:
        anna = await db.get(Contact, ids["anna"])
        assert anna is not None
        assert (anna.last_name, anna.phone, anna.lifecycle_stage) == (
            "Berg",
            "+46701234567",
            "customer",
        )
        assert anna.attributes == {"age": 31, "shoe_size": 42}
        assert anna.tags == ["newsletter", "vip"]
    bad = await post_form(
        client, page, {**base, "phone": "12", "attr-0-value": "old"}, htmx=True, form_page=page
    )
    assert bad.status_code == 422
    assert "is not a number" in bad.text
    async with sessions() as db:
        anna = await db.get(Contact, ids["anna"])
        assert anna is not None and anna.attributes["age"] == 31  # nothing half-written
    viewer = await signed_in(Role.viewer)
    assert (await post_form(viewer, page, base, form_page=page)).status_code == 403


async def test_gdpr_export_and_erase_from_the_contact_page(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    ids = await people(sessions, clock)
    client = await signed_in(Role.admin)
    exported = await client.get(f"/contacts/{ids['cia']}/export.json")
    assert exported.status_code == 200
    assert "attachment" in exported.headers["content-disposition"]
    data = exported.json()
    assert data["contact"]["email"] == "cia@example.com"
    assert [e["type"] for e in data["events"]] == ["form.submitted"]
    page = f"/contacts/{ids['cia']}"
    assert "Erase (GDPR)" in (await client.get(page)).text
    erased = await post_form(client, f"{page}/erase", {}, form_page=page)
    assert erased.status_code == 303 and erased.headers["location"] == "/contacts"
    async with sessions() as db:
        cia = await db.get(Contact, ids["cia"])
        event = (await db.scalars(select(Event))).one()
        audit = [(a.action, a.target_id) for a in await db.scalars(select(AuditEntry))]
    assert cia is not None and cia.email is None and cia.erased_at is not None
    assert event.properties == {}  # counts stay, contents go
    assert ("contact.exported", str(ids["cia"])) in audit
    assert ("contact.erased", str(ids["cia"])) in audit
    assert (await client.get(page)).status_code == 404
    assert "cia@example.com" not in (await client.get("/contacts")).text


async def test_marketers_cannot_erase(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    ids = await people(sessions, clock)
    client = await signed_in(Role.marketer)
    page = f"/contacts/{ids['bo']}"
    refused = await post_form(client, f"{page}/erase", {}, form_page=page)
    assert refused.status_code == 403
    async with sessions() as db:
        bo = await db.get(Contact, ids["bo"])
        assert bo is not None and bo.email == "bo@example.com"


async def test_search_ignores_case_in_any_language_and_treats_wildcards_as_text(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    await people(sessions, clock)
    async with sessions() as db, db.begin():
        db.add(Contact(email="asa@example.com", first_name="Åsa", last_name="Öberg"))
    client = await signed_in(Role.viewer)
    found = (await client.get("/contacts", params={"q": "åSA öb"})).text
    assert "1 contact" in found and "asa@example.com" in found
    assert "No contact matches" in (await client.get("/contacts", params={"q": "%"})).text
