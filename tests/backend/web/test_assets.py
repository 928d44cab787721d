"""The app's CSS and scripts: versioned paths a browser keeps until a file changes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend import assets
from backend.models import Flow, Role
from backend.templating import STATIC_DIR
from tests.backend.web.conftest import SignedIn

_LINKED = re.compile(r'(?:src|href)="(/static/[^"]+)"')


def _linked(html: str) -> list[str]:
    return _LINKED.findall(html)


async def test_pages_link_versioned_files_a_browser_keeps(
    client: AsyncTestClient[Litestar],
) -> None:
    linked = _linked((await client.get("/login")).text)
    prefix = f"/static/v/{assets.version(STATIC_DIR)}/"
    assert {"css/app.css", "vendor/htmx.min.js", "js/app.js"} <= {
        path.removeprefix(prefix) for path in linked
    }
    for path in linked:
        assert path.startswith(prefix), path
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.content == (STATIC_DIR / path.removeprefix(prefix)).read_bytes()
        cache = response.headers["cache-control"]
        assert "immutable" in cache and "max-age=31536000" in cache, cache


async def test_the_editors_modules_load_under_the_pages_version(
    signed_in: SignedIn,
    client: AsyncTestClient[Litestar],
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as db, db.begin():
        flow = Flow(name="Välkommen", phase="onboard", status="draft")
        db.add(flow)
    await signed_in(Role.marketer)
    editor = await client.get(f"/flows/{flow.id}/edit")
    assert editor.status_code == 200
    modules = [p for p in _linked(editor.text) if p.endswith(".js") and "/editor/" in p]
    assert modules, "the editor page links its modules"
    # The modules import each other by relative path: under the same versioned folder.
    folder = modules[0].rsplit("/", 1)[0]
    for module in modules:
        assert module.rsplit("/", 1)[0] == folder
    for imported in re.findall(
        r'from "\./([\w-]+\.js)"', (STATIC_DIR / "editor/editor.js").read_text()
    ):
        assert (await client.get(f"{folder}/{imported}")).status_code == 200, imported


async def test_an_old_version_is_sent_on_and_nothing_outside_the_folder_is_served(
    client: AsyncTestClient[Litestar],
) -> None:
    current = assets.version(STATIC_DIR)
    old = await client.get("/static/v/0123456789ab/js/app.js", follow_redirects=False)
    assert old.status_code == 302
    assert old.headers["location"] == f"/static/v/{current}/js/app.js"
    assert "no-cache" in old.headers["cache-control"]
    for path in (
        f"/static/v/{current}/../../../pyproject.toml",
        f"/static/v/{current}/%2e%2e/%2e%2e/pyproject.toml",
        f"/static/v/{current}/js/missing.js",
    ):
        assert (await client.get(path)).status_code == 404, path
    # The unversioned folder stays for what other sites and old pages link to.
    assert (await client.get("/static/js/app.js")).status_code == 200


def test_the_version_changes_with_any_file_and_only_then(tmp_path: Path) -> None:
    def version_of(files: dict[str, Any]) -> str:
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        for name, content in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(content)
        return assets.version(folder)

    base = {"js/app.js": b"let a = 1;", "css/app.css": b"body {}"}
    first = version_of(base)
    assert re.fullmatch(r"[0-9a-f]{12}", first)
    assert version_of(dict(base)) == first
    assert version_of({**base, "js/app.js": b"let a = 2;"}) != first
    assert version_of({**base, "js/new.js": b""}) != first
    # A file moved to another folder is another tree.
    assert version_of({"app.js": b"let a = 1;", "css/app.css": b"body {}"}) != first
