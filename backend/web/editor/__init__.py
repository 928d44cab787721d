"""The flow editor: a server-rendered canvas, its edits, publishing (issue #5, DESIGN 8)."""

from backend.web.editor import edits, pages, publish, selection, transfer

ROUTES = [
    *pages.ROUTES,
    *edits.ROUTES,
    *selection.ROUTES,
    *publish.ROUTES,
    *transfer.ROUTES,
]

__all__ = ["ROUTES"]
