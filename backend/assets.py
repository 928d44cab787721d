"""The app's own static files under a versioned path, cached by browsers until it changes.

Pages link their CSS and JavaScript as ``/static/v/<version>/<path>``, where the
version is a digest of every file under frontend/static. A browser keeps those
files for a year (``immutable``) and fetches none of them again on the next page;
a deployment that changes any file changes the version, so no browser runs an
old script against a new page. The editor's modules import each other by
relative path, so they load under the same version as the page that named them.

``/static/<path>`` stays as it was (no cache header) for what other sites or old
pages link to: embed codes, the favicon, the snippet. A versioned path with an
old version (a page loaded before a deployment asking for a module) is sent on
to the current version.

The digest is taken once per process, when the first app is built: files edited
while a server runs are served at once, under the version it started with, so
``make run`` with an editor open needs a reload of the server after editing
static files for browsers to fetch them again.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from litestar import Router, get
from litestar.datastructures import CacheControlHeader
from litestar.params import FromPath
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from backend.auth.guards import public

PREFIX = "/static/v"
# A year: the path changes whenever a file does.
VERSIONED_CACHE = CacheControlHeader(public=True, max_age=365 * 24 * 3600, immutable=True)


@cache
def version(static_dir: Path) -> str:
    """A digest of every file's path and contents under ``static_dir`` (12 hex digits)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in static_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(static_dir).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def url(static_dir: Path, path: str) -> str:
    """The versioned address of ``path`` (relative to ``static_dir``)."""
    return f"{PREFIX}/{version(static_dir)}/{path.lstrip('/')}"


def router(static_dir: Path) -> Router:
    """The versioned files, and the redirect of an old version to the current one."""
    current = version(static_dir)

    @get(
        f"{PREFIX}/{{old:str}}/{{path:path}}",
        opt=public(),
        include_in_schema=False,
        cache_control=CacheControlHeader(no_cache=True),
    )
    async def older(old: FromPath[str], path: FromPath[str]) -> Redirect:
        return Redirect(path=f"{PREFIX}/{current}/{path.lstrip('/')}", status_code=302)

    files = create_static_files_router(
        path=f"{PREFIX}/{current}",
        directories=[static_dir],
        cache_control=VERSIONED_CACHE,
        opt=public(),
        name="versioned-static",
    )
    return Router(path="/", route_handlers=[files, older])


__all__ = ["PREFIX", "VERSIONED_CACHE", "router", "url", "version"]
