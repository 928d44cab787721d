"""CSV import pages: upload, preview with a suggested mapping, a background run, the summary.

The run is an in-process asyncio task (``backend.contacts.imports.run_import``)
that commits each chunk, so the page polls the job row for progress and a
job interrupted by a restart can be resumed from where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import File, Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.audit import audited, record
from backend.auth.guards import role
from backend.auth.principal import Principal
from backend.contacts.imports import (
    CONTACT_COLUMNS,
    IGNORE,
    MODES,
    Preview,
    count_rows,
    preview,
    rejected_report_path,
    run_import,
    suggest_target,
    validate_mapping,
)
from backend.contacts.normalize import InvalidValue
from backend.deps import Actor, Db
from backend.i18n import N_, _
from backend.models import ImportJob, Role
from backend.models.base import utcnow
from backend.models.ingestion import AttributeDefinition
from backend.web.render import redirect, render

log = logging.getLogger("touchflow.imports")
UPLOAD_LIMIT = 100 * 1024 * 1024
DRAFT = "draft"  # uploaded, waiting for the mapping
MODE_LABELS = {
    "upsert": N_("Create new contacts and update existing ones"),
    "create": N_("Only create new contacts (skip existing)"),
    "update": N_("Only update existing contacts (skip new)"),
}


def import_dir(app: Litestar) -> Path:
    """Where uploads are kept (``app.state.import_dir``; ``.touchflow/imports`` by default)."""
    path = Path(getattr(app.state, "import_dir", None) or Path(".touchflow") / "imports")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _tasks(app: Litestar) -> dict[int, asyncio.Task[None]]:
    """Imports running in this process (held so they are not garbage-collected mid-run)."""
    if not hasattr(app.state, "import_tasks"):
        app.state.import_tasks = {}
    tasks: dict[int, asyncio.Task[None]] = app.state.import_tasks
    return tasks


def start_job(app: Litestar, job_id: int) -> asyncio.Task[None]:
    """Run (or resume) a job in the background of this process."""
    tasks = _tasks(app)
    running = tasks.get(job_id)
    if running is not None and not running.done():
        return running
    sessions: async_sessionmaker[AsyncSession] = app.state.sessions
    task = asyncio.get_running_loop().create_task(_run(sessions, job_id))
    tasks[job_id] = task
    task.add_done_callback(lambda _t: tasks.pop(job_id, None) if tasks.get(job_id) is _t else None)
    return task


async def _run(sessions: async_sessionmaker[AsyncSession], job_id: int) -> None:
    try:
        await run_import(sessions, job_id)
    except Exception:
        log.exception("import %d stopped", job_id)
        async with sessions() as db, db.begin():
            job = await db.get(ImportJob, job_id)
            if job is not None and job.status != "done":
                job.status, job.error = "failed", _("The import stopped on an unexpected error.")


def _as_utf8(data: bytes) -> bytes:
    """Spreadsheet exports are often Windows-1252; the importer reads UTF-8."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace").encode("utf-8")
    return data


@get("/imports", opt=role(Role.marketer))
async def imports_page(request: Request[Any, Any, Any], db: Db) -> Template:
    jobs = list(await db.scalars(select(ImportJob).order_by(ImportJob.id.desc()).limit(50)))
    return render(request, "imports/list.html", {"nav": "contacts", "jobs": jobs, "errors": {}})


@get("/imports/new", opt=role(Role.marketer))
async def new_import_page(request: Request[Any, Any, Any]) -> Template:
    return render(request, "imports/new.html", {"nav": "contacts", "errors": {}})


@post(
    "/imports",
    opt=role(Role.marketer) | audited("import.uploaded"),
    request_max_body_size=UPLOAD_LIMIT,
)
async def upload(request: Request[Any, Any, Any], db: Db, actor: Actor) -> Response[Any] | Template:
    """Keep the file and show its preview; nothing is imported before the mapping is confirmed."""
    upload = (await request.form()).get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _upload_error(request, _("Choose a CSV file to upload."))
    data = await upload.read()
    if not data.strip():
        return _upload_error(request, _("The file is empty."))
    path = import_dir(request.app) / f"{secrets.token_hex(8)}.csv"
    await asyncio.to_thread(path.write_bytes, _as_utf8(data))
    try:
        shown = await asyncio.to_thread(preview, path)
        # Every row, not only the previewed ones, must be readable before the mapping step.
        await asyncio.to_thread(count_rows, path, shown.delimiter)
    except (InvalidValue, ValueError) as exc:
        path.unlink(missing_ok=True)
        message = exc.message if isinstance(exc, InvalidValue) else str(exc)
        return _upload_error(request, _("This file cannot be read as CSV: %(e)s") % {"e": message})
    job = ImportJob(
        filename=Path(upload.filename).name[:300],
        path=str(path),
        mapping={},
        status=DRAFT,
        created_by_id=actor.id,
    )
    db.add(job)
    await db.flush()
    record(db, actor, "import.uploaded", job, {"file": job.filename})
    return redirect(request, f"/imports/{job.id}")


def _upload_error(request: Request[Any, Any, Any], message: str) -> Template:
    return render(
        request,
        "imports/new.html",
        {"nav": "contacts", "errors": {"file": message}},
        status_code=400,
    )


async def _job(db: AsyncSession, job_id: int) -> ImportJob:
    job = await db.get(ImportJob, job_id)
    if job is None:
        raise NotFoundException(_("There is no import with this number."))
    return job


async def _targets(db: AsyncSession, headers: list[str]) -> list[str]:
    declared = await db.scalars(select(AttributeDefinition.key).order_by(AttributeDefinition.key))
    suggested = [suggest_target(h) for h in headers]
    attrs = sorted(
        {f"attr:{k}" for k in declared} | {t for t in suggested if t.startswith("attr:")}
    )
    return [*CONTACT_COLUMNS, *attrs]


async def _job_page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    job: ImportJob,
    *,
    mapping: dict[str, str] | None = None,
    mode: str = "upsert",
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Template:
    context: dict[str, Any] = {
        "nav": "contacts",
        "job": job,
        "errors": errors or {},
        "running_here": job.id in _tasks(request.app),
    }
    shown = await _readable(job) if job.status == DRAFT else None
    if job.status == "failed" and shown is None and status == 200 and job.started_at is None:
        status = 422  # refused before it started: the file itself cannot be read
    if shown is not None:
        context.update(
            preview=shown,
            mapping=mapping or shown.suggested,
            mode=mode,
            modes=MODE_LABELS,
            targets=await _targets(db, shown.headers),
        )
    return render(request, "imports/job.html", context, block="progress", status_code=status)


async def _readable(job: ImportJob) -> Preview | None:
    """The draft's preview; a file that turns out unreadable fails the job with the reason."""
    try:
        return await asyncio.to_thread(preview, Path(job.path))
    except InvalidValue as exc:
        _fail(job, exc)
        return None


def _fail(job: ImportJob, exc: InvalidValue) -> None:
    job.status, job.error, job.finished_at = "failed", exc.message, utcnow()


def _refused(db: AsyncSession, actor: Principal, job: ImportJob) -> None:
    """A person's start that failed the job (its file cannot be read) is audited too."""
    record(db, actor, "import.refused", job, {"file": job.filename, "error": job.error})


@get("/imports/{job_id:int}", opt=role(Role.marketer))
async def job_page(request: Request[Any, Any, Any], db: Db, job_id: FromPath[int]) -> Template:
    """The mapping form, the progress bar (polled by htmx), or the summary."""
    return await _job_page(request, db, await _job(db, job_id))


@post(
    "/imports/{job_id:int}/start",
    opt=role(Role.marketer) | audited("import.started", "import.refused"),
)
async def start(
    request: Request[Any, Any, Any], db: Db, actor: Actor, job_id: FromPath[int]
) -> Response[Any] | Template:
    job = await _job(db, job_id)
    if job.status != DRAFT:
        return redirect(request, f"/imports/{job.id}")
    form = await request.form()
    shown = await _readable(job)
    if shown is None:
        _refused(db, actor, job)
        return await _job_page(request, db, job)
    wanted = {h: str(form.get(f"map-{i}", IGNORE)) for i, h in enumerate(shown.headers)}
    mode = str(form.get("mode", "upsert"))
    errors: dict[str, str] = {}
    if mode not in MODES:
        errors["mode"] = _("Choose what to do with new and existing contacts.")
    try:
        columns = validate_mapping(shown.headers, wanted)
    except InvalidValue as exc:
        errors["mapping"] = exc.message
    if errors:
        return await _job_page(
            request, db, job, mapping=wanted, mode=mode, errors=errors, status=422
        )
    job.mapping = {"delimiter": shown.delimiter, "columns": columns}
    job.mode = mode
    try:
        job.total_rows = await asyncio.to_thread(count_rows, Path(job.path), shown.delimiter)
    except InvalidValue as exc:
        _fail(job, exc)
        _refused(db, actor, job)
        return await _job_page(request, db, job)
    job.status = "queued"
    record(db, actor, "import.started", job, {"file": job.filename, "rows": job.total_rows})
    # The task reads the job in its own session: it must see this commit.
    await db.commit()
    start_job(request.app, job.id)
    return redirect(request, f"/imports/{job.id}")


@post("/imports/{job_id:int}/resume", opt=role(Role.marketer) | audited("import.resumed"))
async def resume(
    request: Request[Any, Any, Any], db: Db, actor: Actor, job_id: FromPath[int]
) -> Response[Any]:
    """Continue a job a restart interrupted, from its last committed chunk."""
    job = await _job(db, job_id)
    if job.status in ("queued", "running"):
        record(db, actor, "import.resumed", job, {"file": job.filename})
        await db.commit()
        start_job(request.app, job.id)
    return redirect(request, f"/imports/{job.id}")


@get("/imports/{job_id:int}/rejected.csv", opt=role(Role.marketer))
async def rejected_report(db: Db, job_id: FromPath[int]) -> File:
    """The rejected rows with their line number and reason, as CSV."""
    job = await _job(db, job_id)
    report = rejected_report_path(job)
    if not report.exists():
        raise NotFoundException(_("This import has no report of rejected rows."))
    stem = Path(job.filename).stem or "import"
    return File(path=report, filename=f"{stem}-rejected.csv", media_type="text/csv")


ROUTES = [imports_page, new_import_page, upload, job_page, start, resume, rejected_report]
