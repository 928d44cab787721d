"""The flow editor: a server-rendered canvas, its edits, publishing (issue #5, DESIGN 8)."""

from backend.web.editor import (
    edits,
    pages,
    preview,
    publish,
    results,
    rules,
    runpath,
    selection,
    transfer,
    tryout,
)
from runtime.flows import DraftConflict

ROUTES = [
    *pages.ROUTES,
    *edits.ROUTES,
    *selection.ROUTES,
    *publish.ROUTES,
    *transfer.ROUTES,
    *tryout.ROUTES,
    *preview.ROUTES,
    *rules.ROUTES,
    *runpath.ROUTES,
    *results.ROUTES,
]

# A stale draft revision, wherever it is found, gets the editor's conflict answer.
EXCEPTION_HANDLERS = {DraftConflict: edits.conflict_handler}

__all__ = ["EXCEPTION_HANDLERS", "ROUTES"]
