"""The Runs list an auditor works with: filters, failed and stuck first, keyset pages,
bulk retry and cancel with a confirmation and an audit entry, and the CSV export."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import AuditEntry, Contact, Flow, FlowVersion, Journey, Role
from runtime.models import JourneyLease
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import csrf_token
from tests.support.clock import WEB_START

NOW = WEB_START


@dataclass
class Seeded:
    flow_a: int
    flow_b: int
    asa: int
    bo: int
    failed: int  # flow A v1, Åsa, failed with an SMTP error, entered 3 days ago
    stuck: int  # flow A v1, Bo, active but due an hour ago, entered 10 days ago
    waiting: int  # flow A v2, waiting at "wait", entered a day ago
    done: int  # flow B, completed, the formula-named contact, entered 2 days ago
    fresh: int  # flow A v2, active and due now, entered an hour ago
    held: int  # flow C, active at a node whose type is not installed, entered 5 days ago


def _graph(*nodes: tuple[str, str]) -> dict[str, Any]:
    return {
        "nodes": [{"id": i, "type": t, "config": {}, "label": i.title()} for i, t in nodes],
        "edges": [],
    }


async def seed(sessions: async_sessionmaker[AsyncSession]) -> Seeded:
    async with sessions() as db, db.begin():
        flows = [Flow(name=n, status="active") for n in ("Välkomstflöde", "Nyhetsbrev", "Gammal")]
        db.add_all(flows)
        await db.flush()
        a1 = FlowVersion(flow_id=flows[0].id, number=1, graph=_graph(("send", "action.email")))
        a2 = FlowVersion(
            flow_id=flows[0].id,
            number=2,
            graph=_graph(("send", "action.email"), ("wait", "wait.duration")),
        )
        b1 = FlowVersion(flow_id=flows[1].id, number=1, graph=_graph(("send", "action.email")))
        c1 = FlowVersion(flow_id=flows[2].id, number=1, graph=_graph(("x", "missing.type")))
        db.add_all([a1, a2, b1, c1])
        asa = Contact(email="asa@example.se", first_name="Åsa", last_name="Öberg")
        bo = Contact(email="bo@example.se", first_name="Bo", last_name="Ek", external_id="crm-77")
        formula = Contact(email="f@example.se", first_name='=HYPERLINK("http://x")')
        db.add_all([asa, bo, formula])
        await db.flush()

        def run(
            version: FlowVersion, status: str, node: str, entered: timedelta, **kw: Any
        ) -> Journey:
            journey = Journey(
                flow_id=version.flow_id,
                flow_version_id=version.id,
                status=status,
                node_id=node,
                entered_at=NOW - entered,
                updated_at=NOW - entered,
                **kw,
            )
            db.add(journey)
            return journey

        failed = run(a1, "failed", "send", timedelta(days=3), contact_id=asa.id,
                     last_error="SMTP 550: mailbox unavailable")  # fmt: skip
        stuck = run(a1, "active", "send", timedelta(days=10), contact_id=bo.id,
                    due_at=NOW - timedelta(hours=1))  # fmt: skip
        waiting = run(a2, "waiting", "wait", timedelta(days=1), due_at=NOW + timedelta(days=1))
        done = run(b1, "completed", "send", timedelta(days=2), contact_id=formula.id)
        fresh = run(a2, "active", "send", timedelta(hours=1), due_at=NOW)
        held = run(c1, "active", "x", timedelta(days=5), due_at=NOW + timedelta(minutes=5),
                   last_error="node type 'missing.type' is not installed")  # fmt: skip
        await db.flush()
        return Seeded(
            flows[0].id, flows[1].id, asa.id, bo.id,
            failed.id, stuck.id, waiting.id, done.id, fresh.id, held.id,
        )  # fmt: skip


_ROW = re.compile(r'<td><a href="/runs/(\d+)">')


def listed(html: str) -> list[int]:
    return [int(n) for n in _ROW.findall(html)]


async def _ids(client: AsyncTestClient[Litestar], query: str) -> list[int]:
    response = await client.get(f"/runs?{query}", headers={"HX-Request": "true"})
    assert response.status_code == 200, response.text
    return listed(response.text)


async def test_failed_and_stuck_runs_come_first_then_the_newest(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    s = await seed(sessions)
    client = await signed_in(Role.viewer)
    page = (await client.get("/runs")).text
    assert listed(page) == [s.failed, s.held, s.stuck, s.fresh, s.waiting, s.done]
    assert "6 runs" in page and "3 need attention" in page
    assert page.count(">Stuck<") >= 2  # the held and the overdue run, besides the filter option
    assert "Välkomstflöde" in page and "asa@example.se" in page


async def test_a_run_being_walked_is_not_stuck_but_one_whose_worker_died_is(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    s = await seed(sessions)
    async with sessions() as db, db.begin():
        # Bo's overdue run is in a worker's hands (a live lease): work in progress.
        db.add(JourneyLease(journey_id=s.stuck, owner="w1:1", until=NOW + timedelta(minutes=5)))
        # The fresh run was claimed when due, two minutes ago, and its worker died:
        # its lease ran out a minute ago.
        fresh = await db.get(Journey, s.fresh)
        assert fresh is not None
        fresh.due_at = NOW - timedelta(minutes=2)
    client = await signed_in(Role.viewer)
    assert await _ids(client, "status=stuck") == [s.held]  # two minutes due is not stuck
    everyone = [s.failed, s.stuck, s.waiting, s.done, s.fresh, s.held]
    assert sorted(await _ids(client, "")) == sorted(everyone)  # and it is still listed
    async with sessions() as db, db.begin():
        db.add(JourneyLease(journey_id=s.fresh, owner="w2:1", until=NOW - timedelta(minutes=1)))
    assert await _ids(client, "status=stuck") == [s.fresh, s.held]


async def test_each_filter_narrows_the_list(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    s = await seed(sessions)
    client = await signed_in(Role.viewer)
    assert await _ids(client, f"flow={s.flow_a}") == [s.failed, s.stuck, s.fresh, s.waiting]
    assert await _ids(client, f"flow={s.flow_a}&version=2") == [s.fresh, s.waiting]
    assert await _ids(client, f"flow={s.flow_a}&version=9") == []
    assert await _ids(client, "contact=ASA@example.se") == [s.failed]
    assert await _ids(client, f"contact={s.bo}") == [s.stuck]
    assert await _ids(client, "contact=crm-77") == [s.stuck]
    assert await _ids(client, "contact=nobody@example.se") == []
    assert await _ids(client, "status=failed") == [s.failed]
    assert await _ids(client, "status=stuck") == [s.held, s.stuck]
    assert await _ids(client, "status=completed") == [s.done]
    assert await _ids(client, "node=wait") == [s.waiting]
    assert await _ids(client, "error=MAILBOX") == [s.failed]
    assert await _ids(client, "error=100%25") == []  # a typed % is a character, not a wildcard
    assert await _ids(client, "since=2026-02-28&until=2026-03-01") == [s.waiting, s.done]
    assert await _ids(client, "since=2026-03-02") == [s.fresh]
    assert await _ids(client, f"flow={s.flow_a}&status=stuck") == [s.stuck]


async def test_bad_filters_are_explained_not_failed(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await seed(sessions)
    client = await signed_in(Role.viewer)
    cases = {
        "version=2": "Choose the flow whose version you mean.",
        "since=27/11": "Write the date as year-month-day",
        "since=2026-03-02&until=2026-03-01": "The end date is before the start date.",
        "flow=abc": "Choose a flow from the list.",
        "status=exploded": "Choose a status from the list.",
    }
    for query, message in cases.items():
        response = await client.get(f"/runs?{query}")
        assert response.status_code == 422, query
        assert message in response.text, query
        assert listed(response.text) == []
    damaged = await client.get("/runs?after=a.notanumber.1")
    assert damaged.status_code == 400
    assert "start again from the first page" in damaged.text


async def test_keyset_pages_walk_the_whole_list_once(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    s = await seed(sessions)
    client = await signed_in(Role.viewer)
    seen: list[int] = []
    url = "/runs?per_page=2"
    pages = 0
    while url:
        page = (await client.get(url)).text
        seen += listed(page)
        found = re.search(r'<a rel="next" href="([^"]+)"', page)
        url = found.group(1).replace("&amp;", "&") if found else ""
        pages += 1
    assert pages == 3
    assert seen == [s.failed, s.held, s.stuck, s.fresh, s.waiting, s.done]
    # An attention page that ends exactly at the attention part's last row.
    first = (await client.get("/runs?per_page=3")).text
    assert listed(first) == [s.failed, s.held, s.stuck]
    after = re.search(r"after=([^\"&]+)", first)
    assert after is not None
    assert await _ids(client, f"per_page=3&after={after.group(1)}") == [s.fresh, s.waiting, s.done]


async def _post(client: AsyncTestClient[Litestar], data: dict[str, Any]) -> Any:
    token = await csrf_token(client, "/runs")
    return await client.post("/runs/bulk", data={**data, "csrf_token": token})


async def _statuses(sessions: async_sessionmaker[AsyncSession]) -> dict[int, str]:
    async with sessions() as db:
        return {row.id: row.status for row in await db.execute(select(Journey.id, Journey.status))}


async def _audit(sessions: async_sessionmaker[AsyncSession], action: str) -> list[AuditEntry]:
    async with sessions() as db:
        return list(await db.scalars(select(AuditEntry).where(AuditEntry.action == action)))


async def test_bulk_retry_asks_first_then_retries_and_audits(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    s = await seed(sessions)
    client = await signed_in(Role.admin)
    before = await _statuses(sessions)
    ask = await _post(client, {"action": "retry", "ids": [str(s.failed), str(s.waiting)]})
    assert ask.status_code == 200
    assert "1 run will run its failed step again, now." in ask.text
    assert "1 of the chosen runs is left alone" in ask.text
    assert re.findall(r'name="ids" value="(\d+)"', ask.text) == [str(s.failed)]
    assert await _statuses(sessions) == before, "asking changes nothing"
    assert await _audit(sessions, "runs.retried") == []

    # Confirmed with the confirmation form's own fields, token included.
    fields = re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', ask.text)
    assert dict(fields)["csrf_token"] and dict(fields)["confirmed"] == "yes"
    done = await client.post("/runs/bulk", data=dict(fields))
    assert done.status_code == 200 and "1 run retried." in done.text
    after = await _statuses(sessions)
    assert after[s.failed] == "active"
    assert {k: v for k, v in after.items() if k != s.failed} == {
        k: v for k, v in before.items() if k != s.failed
    }
    [entry] = await _audit(sessions, "runs.retried")
    assert entry.details == {"count": 1, "skipped": 0, "runs": [s.failed]}
    assert entry.actor_label


async def test_bulk_cancel_of_all_matching_runs_skips_what_changed_meanwhile(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    s = await seed(sessions)
    client = await signed_in(Role.admin)
    ask = await _post(client, {"action": "cancel", "scope": "all", "flow": str(s.flow_a)})
    assert "4 runs will stop for good" in ask.text
    chosen = re.findall(r'name="ids" value="(\d+)"', ask.text)
    assert sorted(map(int, chosen)) == sorted([s.failed, s.stuck, s.waiting, s.fresh])
    # Meanwhile someone else cancels one of them.
    async with sessions() as db, db.begin():
        journey = await db.get(Journey, s.fresh)
        assert journey is not None
        journey.status = "completed"
    done = await _post(client, {"action": "cancel", "ids": chosen, "confirmed": "yes"})
    assert "3 runs cancelled." in done.text and "1 run was skipped" in done.text
    statuses = await _statuses(sessions)
    assert [statuses[i] for i in (s.failed, s.stuck, s.waiting)] == ["cancelled"] * 3
    assert statuses[s.fresh] == "completed" and statuses[s.done] == "completed"
    [entry] = await _audit(sessions, "runs.cancelled")
    assert (entry.details["count"], entry.details["skipped"]) == (3, 1)


async def test_bulk_actions_are_for_admins_and_refuse_nonsense(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    s = await seed(sessions)
    client = await signed_in(Role.marketer)
    refused = await _post(client, {"action": "retry", "ids": [str(s.failed)], "confirmed": "yes"})
    assert refused.status_code == 403
    assert (await _statuses(sessions))[s.failed] == "failed"
    admin = await signed_in(Role.admin)
    for data, message in (
        ({"action": "explode", "ids": [str(s.failed)]}, "Choose whether to retry or to cancel"),
        ({"action": "retry"}, "Tick the runs to act on"),
        ({"action": "retry", "ids": ["1; drop"]}, "The run numbers sent are not valid."),
        ({"action": "retry", "scope": "all", "since": "nope"}, "year-month-day"),
    ):
        response = await _post(admin, data)
        assert response.status_code == 400, data
        assert message in response.text, data


async def test_csv_export_has_the_matching_runs_guarded_and_audited(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    s = await seed(sessions)
    client = await signed_in(Role.marketer)
    response = await client.get("/runs/export.csv?status=failed")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [int(r["run"]) for r in rows] == [s.failed]
    assert rows[0]["name"] == "Åsa Öberg" and rows[0]["flow"] == "Välkomstflöde"
    assert rows[0]["needs_attention"] == "yes" and rows[0]["version"] == "1"
    assert rows[0]["last_error"] == "SMTP 550: mailbox unavailable"
    everything = list(csv.DictReader(io.StringIO((await client.get("/runs/export.csv")).text)))
    assert [int(r["run"]) for r in everything] == [
        s.failed, s.held, s.stuck, s.fresh, s.waiting, s.done,
    ]  # fmt: skip
    formula = next(r for r in everything if int(r["run"]) == s.done)
    assert formula["name"] == '\'=HYPERLINK("http://x")'
    entries = await _audit(sessions, "runs.exported")
    assert sorted(str(e.details) for e in entries) == ["{'status': 'failed'}", "{}"]
    viewer = await signed_in(Role.viewer)
    assert (await viewer.get("/runs/export.csv")).status_code == 403
