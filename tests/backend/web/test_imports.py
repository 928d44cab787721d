"""CSV import in the browser: upload, preview and mapping, background run, summary, report."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import AuditEntry, Contact, ImportJob, Role
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import csrf_token

Client = AsyncTestClient[Litestar]

PEOPLE = (
    "E-mail;First name;City;Age\n"
    "anna@example.com;Anna;Malmö;30\n"
    "not-an-email;Bo;Lund;41\n"
    "cia@example.com;Cia;Lund;52\n"
)


@pytest.fixture(autouse=True)
def uploads(app: Litestar, tmp_path: Path) -> Path:
    app.state.import_dir = tmp_path
    return tmp_path


async def upload(client: Client, content: bytes, name: str = "people.csv") -> str:
    token = await csrf_token(client, "/imports/new")
    response = await client.post(
        "/imports",
        files={"file": (name, content, "text/csv")},
        data={"csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return str(response.headers["location"])


async def finish(app: Litestar, client: Client) -> None:
    """Wait for the background imports, which run on the test client's own event loop."""

    async def wait_all() -> None:
        await asyncio.gather(*list(app.state.import_tasks.values()))

    await asyncio.to_thread(client.blocking_portal.call, wait_all)


async def test_upload_preview_map_run_and_summary(
    signed_in: SignedIn, app: Litestar, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.marketer)
    location = await upload(client, PEOPLE.encode())
    page = (await client.get(location)).text
    assert "anna@example.com" in page and "Malmö" in page  # the preview
    # Suggested mapping: E-mail -> email, First name -> first_name, City -> attr:city.
    assert re.search(r'name="map-0">.*?<option value="email" selected', page, re.S)
    assert re.search(r'name="map-1">.*?<option value="first_name" selected', page, re.S)
    assert re.search(r'name="map-2">.*?<option value="attr:city" selected', page, re.S)

    token = await csrf_token(client, location)
    started = await client.post(
        f"{location}/start",
        data={
            "csrf_token": token,
            "map-0": "email",
            "map-1": "first_name",
            "map-2": "attr:city",
            "map-3": "",
            "mode": "upsert",
        },
        follow_redirects=False,
    )
    assert started.status_code == 303
    await finish(app, client)
    summary = (await client.get(location)).text
    assert "Import finished" in summary
    assert re.search(r"<dt>Created</dt><dd>2</dd>", summary)
    assert re.search(r"<dt>Rejected</dt><dd>1</dd>", summary)
    assert "Row 3:" in summary and "not a valid email" in summary
    async with sessions() as db:
        contacts = {c.email: c for c in await db.scalars(select(Contact))}
        job = (await db.scalars(select(ImportJob))).one()
        audit = (await db.scalars(select(AuditEntry.action))).all()
    assert set(contacts) == {"anna@example.com", "cia@example.com"}
    assert contacts["anna@example.com"].attributes == {"city": "Malmö"}  # Age was skipped
    assert (job.total_rows, job.processed_rows, job.status) == (3, 3, "done")
    assert not Path(job.path).exists()  # the upload is gone once imported
    assert "import.started" in audit
    listed = (await client.get("/imports")).text
    assert "people.csv" in listed and "3 / 3" in listed

    report = await client.get(f"{location}/rejected.csv")
    assert report.status_code == 200
    rows = list(csv.reader(io.StringIO(report.text)))
    assert rows[0][:2] == ["row", "reason"]
    assert (
        rows[1][0] == "3"
        and "email" in rows[1][1]
        and rows[1][2:]
        == [
            "not-an-email",
            "Bo",
            "Lund",
            "41",
        ]
    )


async def test_progress_is_polled_while_the_job_runs(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession], uploads: Path
) -> None:
    client = await signed_in(Role.marketer)
    path = uploads / "running.csv"
    path.write_text("email\na@example.com\nb@example.com\n")
    async with sessions() as db, db.begin():
        job = ImportJob(
            filename="running.csv",
            path=str(path),
            mapping={"delimiter": ",", "columns": {"email": "email"}},
            status="running",
            total_rows=2,
            processed_rows=1,
        )
        db.add(job)
    fragment = await client.get(f"/imports/{job.id}", headers={"HX-Request": "true"})
    assert fragment.text.lstrip().startswith('<div id="import-job">')
    assert 'hx-trigger="every 1s"' in fragment.text
    assert '<progress max="2" value="1">' in fragment.text
    assert "1 of 2 rows" in fragment.text
    assert "Resume an interrupted import" in fragment.text  # nothing runs it in this process


async def test_resume_continues_from_the_last_committed_chunk(
    signed_in: SignedIn, app: Litestar, sessions: async_sessionmaker[AsyncSession], uploads: Path
) -> None:
    client = await signed_in(Role.marketer)
    path = uploads / "half.csv"
    path.write_text("email,first_name\na@example.com,A\nb@example.com,B\nc@example.com,C\n")
    async with sessions() as db, db.begin():
        job = ImportJob(
            filename="half.csv",
            path=str(path),
            mapping={"delimiter": ",", "columns": {"email": "email", "first_name": "first_name"}},
            status="running",
            total_rows=3,
            processed_rows=2,  # the first two rows were committed before a restart
            created_count=2,
        )
        db.add(job)
    page = f"/imports/{job.id}"
    token = await csrf_token(client, page)
    resumed = await client.post(
        f"{page}/resume", data={"csrf_token": token}, follow_redirects=False
    )
    assert resumed.status_code == 303
    await finish(app, client)
    async with sessions() as db:
        emails = list(await db.scalars(select(Contact.email)))
        done = await db.get(ImportJob, job.id)
    assert emails == ["c@example.com"]
    assert done is not None and (done.status, done.processed_rows, done.created_count) == (
        "done",
        3,
        3,
    )


async def test_bad_uploads_and_mappings_are_explained(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.marketer)
    token = await csrf_token(client, "/imports/new")
    empty = await client.post(
        "/imports", files={"file": ("empty.csv", b"   ", "text/csv")}, data={"csrf_token": token}
    )
    assert empty.status_code == 400 and "The file is empty." in empty.text
    missing = await client.post("/imports", data={"csrf_token": token})
    assert missing.status_code == 400 and "Choose a CSV file" in missing.text

    location = await upload(client, PEOPLE.encode())
    token = await csrf_token(client, location)
    unmatched = await client.post(
        f"{location}/start",
        data={"csrf_token": token, "map-1": "first_name", "mode": "upsert"},
        headers={"HX-Request": "true", "X-CSRF-Token": token},
    )
    assert unmatched.status_code == 422
    assert "map a column to email or external_id" in unmatched.text
    bad_target = await client.post(
        f"{location}/start",
        data={"csrf_token": token, "map-0": "email", "map-1": "attr:Bad Key", "mode": "upsert"},
    )
    assert bad_target.status_code == 422 and "cannot import into" in bad_target.text
    async with sessions() as db:
        job = (await db.scalars(select(ImportJob))).one()
    assert job.status == "draft"
    assert (await client.get("/imports/999/rejected.csv")).status_code == 404
    assert (await client.get(f"{location}/rejected.csv")).status_code == 404  # not run yet
    assert (await client.get("/imports/999")).status_code == 404


async def test_windows_1252_files_are_read(
    signed_in: SignedIn, app: Litestar, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.marketer)
    location = await upload(client, "email,city\nö@example.com,Malmö\n".encode("cp1252"))
    page = (await client.get(location)).text
    assert "Malmö" in page


async def test_viewers_cannot_import(signed_in: SignedIn) -> None:
    client = await signed_in(Role.viewer)
    assert (await client.get("/imports/new")).status_code == 403
