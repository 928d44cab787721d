"""The flow editor: a server-rendered canvas, its edits, publishing (issue #5, DESIGN 8)."""

from backend.web.editor import edits, pages, preview, publish, selection, transfer, tryout

ROUTES = [
    *pages.ROUTES,
    *edits.ROUTES,
    *selection.ROUTES,
    *publish.ROUTES,
    *transfer.ROUTES,
    *tryout.ROUTES,
    *preview.ROUTES,
]

__all__ = ["ROUTES"]
