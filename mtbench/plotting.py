"""Matplotlib on the Agg backend and one way to write a figure: shared by evaluation and sweep plots."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, dpi: float | None = None) -> Path:
    """Lay out, write (creating the folder) and close ``fig``; ``dpi`` None keeps the figure's own."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


# (dx, dy) in points and the text's alignment: right/above first, then the other three corners, then further out
_LABEL_SPOTS = [(dx * s, dy * r, "left" if s > 0 else "right", "bottom" if r > 0 else "top")
                for dx, dy in ((6, 4), (6, 14), (6, 26)) for r in (1, -1) for s in (1, -1)]


def annotate_apart(ax: Any, points: Sequence[tuple[float, float]], labels: Sequence[str],
                   fontsize: float = 7) -> list[Any]:
    """Label each point at the first spot around it where the text stays inside the axes and touches no label
    (no legend, no labelled marker) placed before: labels of close points (a Pareto front, a trade-off curve)
    never run together.
    Call it after everything else is drawn on ``ax``; where no spot is free the first one is used."""
    fig = ax.figure
    fig.tight_layout()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    legend = ax.get_legend()
    taken = [legend.get_window_extent(renderer)] if legend is not None else []
    from matplotlib.transforms import Bbox

    for x, y in points:  # the labelled markers themselves (about 5 px around each)
        if math.isfinite(x) and math.isfinite(y):
            px, py = ax.transData.transform((x, y))
            taken.append(Bbox.from_extents(px - 5, py - 5, px + 5, py + 5))
    out = []
    for (x, y), text in zip(points, labels):
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        chosen = None
        for dx, dy, ha, va in _LABEL_SPOTS:
            ann = ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), ha=ha, va=va,
                              fontsize=fontsize)
            box = ann.get_window_extent(renderer)
            # a few pixels' margin: the final layout may still shrink the axes a little
            inside = (frame.x0 + 6 <= box.x0 and box.x1 <= frame.x1 - 6 and frame.y0 + 6 <= box.y0
                      and box.y1 <= frame.y1 - 6)
            if inside and not any(box.overlaps(b) for b in taken):
                chosen = (ann, box)
                break
            ann.remove()
        if chosen is None:
            dx, dy, ha, va = _LABEL_SPOTS[0]
            ann = ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), ha=ha, va=va,
                              fontsize=fontsize)
            chosen = (ann, ann.get_window_extent(renderer))
        taken.append(chosen[1])
        out.append(chosen[0])
    return out


def labels_overlap(fig: Any, texts: Sequence[Any]) -> bool:
    """Whether any two of ``texts`` (matplotlib Text / annotations) overlap as drawn."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
