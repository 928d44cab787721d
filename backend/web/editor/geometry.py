"""Where things sit on the canvas: node boxes, port anchors and the curves between them.

The server draws the canvas, so it owns this arithmetic. The JS module only
redraws the curves of a node while it is being dragged, reading each port's
anchor from ``data-offset`` so both sides agree without sharing code.
"""

from __future__ import annotations

NODE_WIDTH = 220
NODE_MIN_HEIGHT = 72
PORT_SPACING = 26
# Curves leave and enter horizontally; this is how far their handles reach at least.
MIN_HANDLE = 60.0


def node_height(port_count: int) -> int:
    """Tall enough for the node's title and for every output port to have its own row."""
    return max(NODE_MIN_HEIGHT, PORT_SPACING * port_count + 20)


def port_offset(index: int, count: int, height: int) -> float:
    """Vertical offset of output port ``index`` (of ``count``) from the node's top edge."""
    return round(height * (index + 1) / (count + 1), 1)


def _n(value: float) -> str:
    """A coordinate for SVG: a tenth of a pixel is precise enough, without trailing zeros."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def edge_path(x1: float, y1: float, x2: float, y2: float) -> str:
    """An SVG cubic curve from an output port (right edge) to an input (left edge).

    Going forward, the handles meet halfway, so the curve never swings back past its
    ends (a short hop to a lower step is an S, not a loop). Only an edge back to a step
    on the left needs handles reaching out, around the nodes.
    """
    dx = x2 - x1
    handle = dx / 2 if dx > 0 else max(MIN_HANDLE, abs(dx) / 2)
    return (
        f"M {_n(x1)} {_n(y1)} C {_n(x1 + handle)} {_n(y1)}, "
        f"{_n(x2 - handle)} {_n(y2)}, {_n(x2)} {_n(y2)}"
    )


def midpoint(x1: float, y1: float, x2: float, y2: float) -> tuple[float, float]:
    """Where a curve drawn by ``edge_path`` passes halfway (its label goes there)."""
    return round((x1 + x2) / 2, 1), round((y1 + y2) / 2, 1)
