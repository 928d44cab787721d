"""Follow-up from the run history: customers reached, conversions, failures, warnings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.lifecycle.followup import follow_up
from backend.models import Contact, FlowVersion, Journey, Step, Visitor
from tests.backend.lifecycle.helpers import card, first_process, flow, link

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


async def test_reached_conversions_and_failures_in_the_last_30_days(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as db, db.begin():
        process = await first_process(db)
        mail = await card(db, process.id, "Välkomstmejl", "company", status="automated")
        whole = await card(db, process.id, "Hela flödet", "company", status="planned")
        idle = await card(db, process.id, "Inbjudan", "company", status="automated")
        made = await flow(db, "Välkomst", "active")
        version = FlowVersion(flow_id=made.id, number=1, graph={})
        åsa, örjan = Contact(email="asa@example.com"), Contact(email="orjan@example.com")
        db.add_all([version, åsa, örjan, Visitor(id="v-1")])
        await db.flush()
        await link(db, mail, made, "mail")
        await link(db, whole, made)
        await link(db, idle, made, "never")

        def journey(contact: Contact | None, visitor: str | None = None) -> Journey:
            row = Journey(
                flow_id=made.id,
                flow_version_id=version.id,
                node_id="mail",
                contact_id=contact.id if contact else None,
                visitor_id=visitor,
            )
            db.add(row)
            return row

        # Åsa twice (counts once), Örjan once, a visitor once; one old journey outside 30 days.
        rows = [journey(åsa), journey(åsa), journey(örjan), journey(None, "v-1"), journey(örjan)]
        await db.flush()
        stamps = [NOW - timedelta(days=d) for d in (1, 2, 3, 4, 45)]
        for row, at in zip(rows, stamps, strict=True):
            db.add(
                Step(
                    journey_id=row.id,
                    node_id="mail",
                    visit=1,
                    node_type="action.email",
                    status="done",
                    started_at=at,
                )
            )
        db.add(
            Step(
                journey_id=rows[0].id,
                node_id="goal",
                visit=1,
                node_type="goal.conversion",
                status="ended",
                started_at=NOW - timedelta(hours=5),
            )
        )
        db.add(
            Step(
                journey_id=rows[2].id,
                node_id="mail",
                visit=2,
                node_type="action.email",
                status="error",
                started_at=NOW - timedelta(hours=3),
            )
        )

    async with sessions() as db:
        result = await follow_up(db, [mail, whole, idle], NOW)
    assert result[mail.id].reached == 3
    assert result[mail.id].conversions == 1
    assert result[mail.id].failures == 1
    assert result[mail.id].warnings == ["1 failed steps in the last 30 days."]
    assert result[whole.id].reached == 3 and result[whole.id].warnings == []
    assert result[idle.id].reached == 0
    assert result[idle.id].warnings == ["No customer reached in the last 30 days."]
