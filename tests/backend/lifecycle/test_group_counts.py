"""The board's customer-group filter counts the contacts a rule-based group holds now."""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Contact, Role
from tests.backend.lifecycle.helpers import card, first_process
from tests.backend.web.conftest import SignedIn

MALMO = {"attribute": "city", "type": "string", "op": "equals", "value": "Malmö"}


async def _board(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as db, db.begin():
        process = await first_process(db)
        await card(db, process.id, "Erbjudande i Malmö", "company", audience_rule=MALMO)
        await card(db, process.id, "Mässinbjudan", "company", audience_text="Kunder i Malmö")
        db.add_all(
            [
                Contact(email="asa@example.se", attributes={"city": "Malmö"}),
                Contact(email="orjan@example.se", attributes={"city": "Malmö"}),
                Contact(email="bjorn@example.se", attributes={"city": "Lund"}),
            ]
        )
        return process.id


async def test_a_rule_based_group_shows_how_many_contacts_match_now(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    process_id = await _board(sessions)
    client = await signed_in(Role.viewer)
    unfiltered = (await client.get(f"/lifecycle/processes/{process_id}")).text
    assert "contacts match now" not in unfiltered, "counted only when filtering by group"
    assert '<datalist id="tp-groups">' in unfiltered and "Kunder i Malmö" in unfiltered
    board = (await client.get(f"/lifecycle/processes/{process_id}?group=Malmö")).text
    assert "Erbjudande i Malmö" in board and "Mässinbjudan" in board
    counts = board.split('class="plain-list tp-group-counts"')[1].split("</ul>")[0]
    assert counts.count("<li>") == 1, "the free-text group has no members to count"
    assert "2 contacts match now" in counts
    # The count links to the contacts page filtered by the same rule, which agrees.
    link = re.search(r'href="/contacts\?rule=([^"]+)"', counts)
    assert link
    contacts = await client.get("/contacts", params={"rule": unquote_plus(link.group(1))})
    assert "2 contacts" in contacts.text and "asa@example.se" in contacts.text
    # "Now": a new contact in Malmö is counted on the next look.
    async with sessions() as db, db.begin():
        db.add(Contact(email="ulla@example.se", attributes={"city": "Malmö"}))
    board = (await client.get(f"/lifecycle/processes/{process_id}?group=Malmö")).text
    assert "3 contacts match now" in board
