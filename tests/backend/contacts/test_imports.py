"""CSV import: mapping, per-row rejection with reasons, modes, resumable progress."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.contacts.imports import (
    preview,
    rejected_report_path,
    run_import,
    suggest_target,
    validate_mapping,
)
from backend.contacts.normalize import InvalidValue
from backend.models import Contact, ImportJob

CSV = """E-mail;First name;City;Age;Mobile
anna@example.com;Anna;Stockholm;34;0701234567
bob@example;Bob;Malmö;40;
carl@example.com;Carl;Göteborg;not a number;
dana@example.com;Dana;Stockholm;29;12
ANNA@example.com;Anna-Karin;Uppsala;35;
"""


async def _job(sessions: async_sessionmaker[AsyncSession], path: Path, mode: str = "upsert") -> int:
    info = preview(path)
    columns = validate_mapping(info.headers, info.suggested)
    async with sessions() as session, session.begin():
        job = ImportJob(
            filename=path.name,
            path=str(path),
            mapping={"delimiter": info.delimiter, "columns": columns},
            mode=mode,
        )
        session.add(job)
        await session.flush()
        return job.id


def test_preview_sniffs_delimiter_and_suggests_targets(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(CSV)
    info = preview(path)
    assert info.delimiter == ";"
    assert info.headers[:2] == ["E-mail", "First name"]
    assert info.suggested["E-mail"] == "email"
    assert info.suggested["Mobile"] == "phone"
    assert info.suggested["City"] == "attr:city"
    assert len(info.rows) == 5
    assert suggest_target("Customer ID") == "external_id"


def test_mapping_needs_an_identifier_column() -> None:
    with pytest.raises(InvalidValue, match="email or external_id"):
        validate_mapping(["Name"], {"Name": "first_name"})
    with pytest.raises(InvalidValue, match="no column"):
        validate_mapping(["Email"], {"Mail": "email"})


async def test_import_rejects_bad_rows_with_reasons_and_keeps_the_rest(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    path = tmp_path / "people.csv"
    path.write_text(CSV)
    job_id = await _job(sessions, path)
    await run_import(sessions, job_id)

    async with sessions() as session:
        job = await session.get(ImportJob, job_id)
        assert job is not None
        contacts = {c.email: c for c in (await session.scalars(select(Contact))).all()}
    assert job.status == "done"
    assert job.processed_rows == 5
    assert (job.created_count, job.updated_count, job.rejected_count) == (1, 1, 3)
    reasons = {r["row"]: r["reason"] for r in job.rejected}
    assert "not a valid email" in reasons[3]
    assert "declared as number" in reasons[4]
    assert "phone number" in reasons[5]
    # The last row updated Anna (same address, other case): the file's later row wins.
    assert set(contacts) == {"anna@example.com"}
    assert contacts["anna@example.com"].first_name == "Anna-Karin"
    assert contacts["anna@example.com"].attributes == {"city": "Uppsala", "age": 35}
    report = rejected_report_path(job).read_text().splitlines()
    assert len(report) == 4 and report[1].startswith("3,")


async def test_update_only_mode_skips_unknown_contacts(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    first = tmp_path / "first.csv"
    first.write_text("email,city\nknown@example.com,Lund\n")
    await run_import(sessions, await _job(sessions, first))
    second = tmp_path / "second.csv"
    second.write_text("email,city\nknown@example.com,Umeå\nnew@example.com,Kiruna\n")
    job_id = await _job(sessions, second, mode="update")
    await run_import(sessions, job_id)
    async with sessions() as session:
        job = await session.get(ImportJob, job_id)
        emails = set((await session.scalars(select(Contact.email))).all())
    assert job is not None and (job.updated_count, job.skipped_count) == (1, 1)
    assert emails == {"known@example.com"}


async def test_an_interrupted_import_resumes_where_it_stopped(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    path = tmp_path / "many.csv"
    path.write_text("email\n" + "".join(f"p{i}@example.com\n" for i in range(1200)))
    job_id = await _job(sessions, path)
    async with sessions() as session, session.begin():
        job = await session.get(ImportJob, job_id)
        assert job is not None
        job.processed_rows, job.status = 500, "running"  # as if the worker died after chunk 1
    await run_import(sessions, job_id)
    async with sessions() as session:
        job = await session.get(ImportJob, job_id)
        emails = set((await session.scalars(select(Contact.email))).all())
    assert job is not None and job.status == "done" and job.processed_rows == 1200
    assert len(emails) == 700 and "p500@example.com" in emails and "p499@example.com" not in emails
