"""Lifecycle planning: phases and processes, the touchpoint board, priorities and the gap analysis.

The method this carries: draw the lifecycle's phases and processes, put every
touchpoint of a process on its timeline in one of three categories (today, the
company's interest, the customer's interest), prioritise them with a horizon,
automate the top ones, and see per phase what the customer needs that nobody
does. Domain code lives here; ``pages`` holds the HTTP handlers.
"""

from backend.lifecycle import gap_pages, node_links, pages, plan_pages

ROUTES = [*plan_pages.ROUTES, *pages.ROUTES, *gap_pages.ROUTES, *node_links.ROUTES]

__all__ = ["ROUTES"]
