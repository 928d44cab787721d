"""A flow's lifecycle process: chosen when made and on its page, shown and filtered in the list."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.lifecycle.plan import add_process, ensure_workspace, load_plan, retire_process
from backend.models import AuditEntry, Flow, LifecycleProcess, Role, utcnow
from tests.backend.lifecycle.helpers import flow
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import post_form

Client = AsyncTestClient[Litestar]


async def _plan(
    sessions: async_sessionmaker[AsyncSession],
) -> tuple[LifecycleProcess, LifecycleProcess]:
    """A process in Attract & convert and one in Retain (the flows' phases attract and retain)."""
    async with sessions() as db, db.begin():
        await ensure_workspace(db)
        plan = await load_plan(db)
        attract = next(view for view in plan if view.phase.flow_phase == "attract")
        retain = next(view for view in plan if view.phase.flow_phase == "retain")
        web = await add_process(db, attract.phase.id, "Konvertering från webben")
        churn = await add_process(db, retain.phase.id, "Återvinn kunder som slutat köpa")
        return web, churn


async def _flow(sessions: async_sessionmaker[AsyncSession], name: str, **values: object) -> Flow:
    async with sessions() as db, db.begin():
        made = await flow(db, name, "draft")
        for key, value in values.items():
            setattr(made, key, value)
        return made


async def test_new_flow_page_offers_processes_by_phase_and_name(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    web, churn = await _plan(sessions)
    client = await signed_in(Role.marketer)
    page = (await client.get("/flows/new")).text
    groups = re.findall(r'<optgroup label="([^"]*)">(.*?)</optgroup>', page, re.S)
    by_phase = {label: body for label, body in groups}
    assert f'value="{web.id}"' in by_phase["Attract &amp; convert"]
    assert "Konvertering från webben" in by_phase["Attract &amp; convert"]
    assert "Återvinn kunder som slutat köpa" in by_phase["Retain"]
    assert f'value="{churn.id}"' not in by_phase["Attract &amp; convert"]


async def test_a_new_flow_takes_its_process_and_the_process_phase(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _web, churn = await _plan(sessions)
    client = await signed_in(Role.marketer)
    response = await post_form(
        client,
        "/flows",
        {"name": "Vi saknar dig", "phase": "attract", "process_id": str(churn.id)},
    )
    assert response.status_code == 303, response.text
    async with sessions() as db:
        made = await db.scalar(select(Flow).where(Flow.name == "Vi saknar dig"))
        assert made is not None
        assert made.process_id == churn.id
        assert made.phase == "retain", "the process's phase wins over the phase picked beside it"
        entry = await db.scalar(select(AuditEntry).where(AuditEntry.action == "flow.created"))
        assert entry is not None and entry.details["process"] == churn.id


async def test_new_flow_refuses_an_unknown_or_retired_process(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    web, _churn = await _plan(sessions)
    async with sessions() as db, db.begin():
        await retire_process(db, web.id)
    client = await signed_in(Role.marketer)
    for value, message in [
        ("999999", "There is no process with this number."),
        ("abc", "Choose one of the processes in the list."),
        (str(web.id), "is retired"),
    ]:
        response = await post_form(
            client, "/flows", {"name": "Gäst", "phase": "attract", "process_id": value}, htmx=True
        )
        assert response.status_code == 422, value
        assert message in response.text
    async with sessions() as db:
        assert await db.scalar(select(Flow).where(Flow.name == "Gäst")) is None


async def test_marketer_changes_the_process_on_the_flow_page_audited(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    web, churn = await _plan(sessions)
    made = await _flow(sessions, "Välkommen åter", phase="attract", process_id=web.id)
    client = await signed_in(Role.marketer)
    page = (await client.get(f"/flows/{made.id}")).text
    assert f'href="/lifecycle/processes/{web.id}"' in page
    assert 'id="flow-process"' in page
    response = await post_form(
        client, f"/flows/{made.id}/process", {"process_id": str(churn.id)}, form_page="/flows"
    )
    assert response.status_code == 303, response.text
    async with sessions() as db:
        changed = await db.get(Flow, made.id)
        assert changed is not None
        assert (changed.process_id, changed.phase) == (churn.id, "retain")
        entry = await db.scalar(
            select(AuditEntry).where(AuditEntry.action == "flow.process_changed")
        )
        assert entry is not None
        assert entry.details == {"process": [web.id, churn.id], "phase": ["attract", "retain"]}
    page = (await client.get(f"/flows/{made.id}")).text
    assert f'href="/lifecycle/processes/{churn.id}"' in page
    # Taking the flow out of any process keeps its phase.
    response = await post_form(client, f"/flows/{made.id}/process", {"process_id": ""})
    assert response.status_code == 303
    async with sessions() as db:
        changed = await db.get(Flow, made.id)
        assert changed is not None and (changed.process_id, changed.phase) == (None, "retain")


async def test_viewer_reads_the_process_but_cannot_change_it(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    web, churn = await _plan(sessions)
    made = await _flow(sessions, "Läs bara", process_id=web.id)
    client = await signed_in(Role.viewer)
    page = (await client.get(f"/flows/{made.id}")).text
    assert "Konvertering från webben" in page
    assert f'href="/lifecycle/processes/{web.id}"' in page
    assert 'id="flow-process"' not in page
    response = await post_form(client, f"/flows/{made.id}/process", {"process_id": str(churn.id)})
    assert response.status_code == 403
    async with sessions() as db:
        unchanged = await db.get(Flow, made.id)
        assert unchanged is not None and unchanged.process_id == web.id


async def test_changing_the_process_refuses_archived_flows_and_retired_processes(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    web, churn = await _plan(sessions)
    archived = await _flow(sessions, "Arkiverat", status="archived")
    live = await _flow(sessions, "Levande", process_id=web.id)
    async with sessions() as db, db.begin():
        await retire_process(db, churn.id)
    client = await signed_in(Role.marketer)
    refused = await post_form(client, f"/flows/{archived.id}/process", {"process_id": str(web.id)})
    assert refused.status_code == 409 and "archived flow cannot be changed" in refused.text
    refused = await post_form(client, f"/flows/{live.id}/process", {"process_id": str(churn.id)})
    assert refused.status_code == 422 and "is retired" in refused.text
    missing = await post_form(client, "/flows/999999/process", {"process_id": str(web.id)})
    assert missing.status_code == 404
    async with sessions() as db:
        unchanged = await db.get(Flow, live.id)
        assert unchanged is not None and unchanged.process_id == web.id
        audited = await db.scalar(
            select(AuditEntry).where(AuditEntry.action == "flow.process_changed")
        )
        assert audited is None


async def test_flows_list_shows_and_filters_by_phase_and_process(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    web, churn = await _plan(sessions)
    await _flow(sessions, "Guide-flödet", phase="attract", process_id=web.id)
    await _flow(sessions, "Återköp", phase="retain", process_id=churn.id)
    await _flow(sessions, "Lösa trådar", phase="retain")
    client = await signed_in(Role.viewer)
    page = (await client.get("/flows")).text
    row = page.split("Guide-flödet")[1].split("</tr>")[0]
    assert "Attract" in row and f'href="/lifecycle/processes/{web.id}"' in row
    assert "Konvertering från webben" in row

    def names(html: str) -> set[str]:
        return {n for n in ("Guide-flödet", "Återköp", "Lösa trådar") if n in html}

    assert names((await client.get("/flows?phase=retain")).text) == {"Återköp", "Lösa trådar"}
    assert names((await client.get(f"/flows?process={web.id}")).text) == {"Guide-flödet"}
    assert names((await client.get("/flows?process=none")).text) == {"Lösa trådar"}
    both = (await client.get(f"/flows?phase=attract&process={churn.id}")).text
    assert names(both) == set() and "No flow matches this filter." in both
    # A filter value that means nothing shows every flow rather than an error.
    assert len(names((await client.get("/flows?phase=nope&process=x")).text)) == 3


async def test_a_flow_in_a_retired_process_still_shows_it(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    web, churn = await _plan(sessions)
    made = await _flow(sessions, "Gammal process", process_id=churn.id)
    async with sessions() as db, db.begin():
        await retire_process(db, web.id)
        # Retiring refuses while a flow sits in the process; a plan edited before
        # that rule existed can still hold one, so retire it directly.
        row = await db.get(LifecycleProcess, churn.id)
        assert row is not None
        row.retired_at = utcnow()
    client = await signed_in(Role.marketer)
    page = (await client.get(f"/flows/{made.id}")).text
    picker = page.split('id="flow-process"')[1].split("</form>")[0]
    assert re.search(rf'value="{churn.id}"\s+selected>[^<]*\(retired\)', picker)
    assert f'value="{web.id}"' not in picker, "other retired processes are not offered"
    # Saving the form unchanged is not a change (nothing refused, nothing audited).
    same = await post_form(client, f"/flows/{made.id}/process", {"process_id": str(churn.id)})
    assert same.status_code == 303
    async with sessions() as db:
        assert (
            await db.scalar(select(AuditEntry).where(AuditEntry.action == "flow.process_changed"))
            is None
        )
