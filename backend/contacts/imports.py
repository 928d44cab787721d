"""CSV import: preview and column mapping, then a chunked background run with progress.

Each chunk of rows commits on its own, so a crash loses at most the chunk in
flight (which is re-run from ``processed_rows`` on restart: identify is an
upsert, so re-running rows is harmless). A bad row is rejected with its reason
and never stops the others.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.contacts.bulk import identify_many
from backend.contacts.identify import AttributeSchema, Identified
from backend.contacts.normalize import InvalidValue
from backend.contacts.schemas import IdentifyIn
from backend.csvfile import CsvWriter
from backend.i18n import gettext as _
from backend.models import ImportJob, utcnow

CHUNK_ROWS = 500
PREVIEW_ROWS = 5
REJECTED_KEPT = 100
MAX_FIELD = 10_000
MODES = ("upsert", "create", "update")
# Columns that map to contact fields rather than custom attributes.
CONTACT_COLUMNS = (
    "email",
    "external_id",
    "phone",
    "first_name",
    "last_name",
    "lifecycle_stage",
    "timezone",
    "tags",
)
IGNORE = ""
_GUESSES = {
    "e_mail": "email",
    "mail": "email",
    "id": "external_id",
    "customer_id": "external_id",
    "mobile": "phone",
    "telephone": "phone",
    "firstname": "first_name",
    "given_name": "first_name",
    "lastname": "last_name",
    "surname": "last_name",
    "family_name": "last_name",
    "stage": "lifecycle_stage",
}


@dataclass(frozen=True)
class Preview:
    headers: list[str]
    rows: list[list[str]]
    delimiter: str
    suggested: dict[str, str]  # header -> target ("email", "attr:city", or "" to skip)


def _slug(header: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", header.strip().lower()).strip("_")[:64]


def suggest_target(header: str) -> str:
    slug = _slug(header)
    if slug in CONTACT_COLUMNS:
        return slug
    if slug in _GUESSES:
        return _GUESSES[slug]
    return f"attr:{slug}" if slug else IGNORE


def _reader(text_stream: io.TextIOBase, delimiter: str) -> Iterator[list[str]]:
    csv.field_size_limit(MAX_FIELD)
    reader = csv.reader(text_stream, delimiter=delimiter)
    try:
        yield from reader
    except csv.Error as exc:
        # Mostly a field over MAX_FIELD characters (a stray quote swallowing the file).
        raise InvalidValue(
            "file",
            _("line %(line)d cannot be read (%(reason)s; a field holds at most %(n)s characters)")
            % {"line": reader.line_num, "reason": exc, "n": f"{MAX_FIELD:,}"},
        ) from None


def sniff_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def preview(path: Path) -> Preview:
    """Headers, the first rows, and a suggested mapping for the mapping form."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        delimiter = sniff_delimiter(handle.read(64_000))
        handle.seek(0)
        reader = _reader(handle, delimiter)
        headers = next(reader, [])
        rows = [row for _, row in zip(range(PREVIEW_ROWS), reader, strict=False)]
    if not headers:
        raise InvalidValue("file", _("the file is empty"))
    return Preview(headers, rows, delimiter, {h: suggest_target(h) for h in headers})


def validate_mapping(headers: list[str], mapping: dict[str, str]) -> dict[str, str]:
    """Check a header -> target mapping; returns it without the skipped columns.

    A job stores ``{"delimiter": ..., "columns": <this mapping>}``.
    """
    clean: dict[str, str] = {}
    for header, target in mapping.items():
        if header not in headers:
            raise InvalidValue("mapping", _("the file has no column “%(c)s”") % {"c": header})
        if target == IGNORE:
            continue
        if target not in CONTACT_COLUMNS and not re.fullmatch(r"attr:[a-z0-9_]{1,64}", target):
            raise InvalidValue("mapping", _("cannot import into “%(t)s”") % {"t": target})
        clean[header] = target
    if not {"email", "external_id"} & set(clean.values()):
        raise InvalidValue(
            "mapping", _("map a column to email or external_id so contacts can be matched")
        )
    return clean


def typed_cell(cell: str) -> Any:
    """Read a CSV cell as a person would: numbers and yes/no become typed values.

    Only affects attributes seen for the first time; declared ones are coerced
    to their type anyway.
    """
    lowered = cell.lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    # Leading zeros mean an identifier (postcode, customer number), not a quantity.
    if re.fullmatch(r"-?(0|[1-9]\d{0,14})", cell):
        return int(cell)
    if re.fullmatch(r"-?(0|[1-9]\d{0,14})[.,]\d{1,6}", cell):
        return float(cell.replace(",", "."))
    return cell


def row_to_identify(headers: list[str], row: list[str], mapping: dict[str, str]) -> IdentifyIn:
    values: dict[str, Any] = {"attributes": {}}
    for header, cell in zip(headers, row, strict=False):
        target = mapping.get(header)
        cell = cell.strip()
        if not target or cell == "":
            continue
        if target.startswith("attr:"):
            values["attributes"][target[5:]] = typed_cell(cell)
        elif target == "tags":
            values["tags"] = [t for t in re.split(r"[;,|]", cell) if t.strip()]
        else:
            values[target] = cell
    return IdentifyIn.model_validate(values)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in exc.errors()
        )
    if isinstance(exc, InvalidValue):
        return exc.message if exc.field == "row" else f"{exc.field}: {exc.message}"
    return str(exc)


async def _process_chunk(
    session: AsyncSession,
    job: ImportJob,
    headers: list[str],
    chunk: list[tuple[int, list[str]]],
    rejected_out: CsvWriter,
) -> None:
    schema = await AttributeSchema.load(session)
    create, update = job.mode in ("upsert", "create"), job.mode in ("upsert", "update")
    outcomes: dict[int, Exception | Identified | None] = {}
    parsed: list[tuple[int, IdentifyIn]] = []
    for line, row in chunk:
        try:
            if len(row) > len(headers):
                raise InvalidValue("row", _("more cells than columns"))
            parsed.append((line, row_to_identify(headers, row, job.mapping["columns"])))
        except (ValidationError, InvalidValue) as exc:
            outcomes[line] = exc
    results = await identify_many(
        session,
        [data for _line, data in parsed],
        source=f"import:{job.id}",
        schema=schema,
        create=create,
        update=update,
    )
    outcomes.update((line, result) for (line, _data), result in zip(parsed, results, strict=True))
    for line, row in chunk:
        result = outcomes[line]
        if isinstance(result, Exception):
            reason = _reason(result)
            job.rejected_count += 1
            if len(job.rejected) < REJECTED_KEPT:
                job.rejected = [*job.rejected, {"row": line, "reason": reason}]
            rejected_out.writerow([line, reason, *row])
        elif result is None:
            job.skipped_count += 1
        elif result.created:
            job.created_count += 1
        else:
            job.updated_count += 1
    job.processed_rows += len(chunk)


def rejected_report_path(job: ImportJob) -> Path:
    return Path(job.path).with_suffix(".rejected.csv")


async def run_import(sessions: async_sessionmaker[AsyncSession], job_id: int) -> None:
    """Run (or resume) an import job to the end, committing progress after every chunk."""
    async with sessions() as session, session.begin():
        job = await session.get(ImportJob, job_id)
        if job is None or job.status in ("done", "failed"):
            return
        job.status, job.started_at = "running", job.started_at or utcnow()
        path, delimiter = Path(job.path), job.mapping["delimiter"]
        skip = job.processed_rows
    mapping_headers: list[str] = []
    report = rejected_report_path(job)
    try:
        # A local file read a line at a time: cheaper inline than a thread hop per line.
        with (
            path.open(encoding="utf-8-sig", newline="") as handle,  # noqa: ASYNC230
            report.open("a", encoding="utf-8", newline="") as out,
        ):
            writer = CsvWriter(out)
            rows = _reader(handle, delimiter)
            mapping_headers = next(rows, [])
            if skip == 0:
                writer.writerow([_("row"), _("reason"), *mapping_headers])
            chunk: list[tuple[int, list[str]]] = []
            for index, row in enumerate(rows, start=2):
                if index - 2 < skip:
                    continue
                chunk.append((index, row))
                if len(chunk) >= CHUNK_ROWS:
                    await _commit_chunk(sessions, job_id, mapping_headers, chunk, writer)
                    out.flush()
                    chunk = []
            if chunk:
                await _commit_chunk(sessions, job_id, mapping_headers, chunk, writer)
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        async with sessions() as session, session.begin():
            failed = await session.get(ImportJob, job_id)
            assert failed is not None
            failed.status, failed.error, failed.finished_at = "failed", str(exc), utcnow()
        return
    async with sessions() as session, session.begin():
        done = await session.get(ImportJob, job_id)
        assert done is not None
        done.status, done.finished_at = "done", utcnow()
    # The upload holds personal data that a later GDPR erasure could not reach.
    path.unlink(missing_ok=True)  # noqa: ASYNC240 - one local unlink


async def _commit_chunk(
    sessions: async_sessionmaker[AsyncSession],
    job_id: int,
    headers: list[str],
    chunk: list[tuple[int, list[str]]],
    writer: Any,
) -> None:
    async with sessions() as session, session.begin():
        job = await session.get(ImportJob, job_id, with_for_update=True)
        assert job is not None
        await _process_chunk(session, job, headers, chunk, writer)


def count_rows(path: Path, delimiter: str = ",") -> int:
    """Data rows in the file (the progress bar's total); InvalidValue for an unreadable row."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return max(sum(1 for _ in _reader(handle, delimiter)) - 1, 0)
