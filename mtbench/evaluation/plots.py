"""PNG figures for evaluation: parity plots (predicted vs reference) and cross-head heatmaps.

Matplotlib's Agg backend is used explicitly (no display needed); every function writes one file and returns its
path. Big sets are drawn as a hexbin density so that a million force components stay readable and fast.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mtbench.plotting import pyplot, save_figure

HEXBIN_ABOVE = 5000  # points; a scatter above this hides the density
PARITY_TICKS = 5  # at most this many ticks per parity axis: long labels (-0.1445) must not run together
HEATMAP_MIN_SIZE = (4.2, 2.8)  # inches: a 1x1 heatmap stays legible and its title fits
TITLE_CHARS_PER_INCH = 11  # a 9 pt title wraps at about this many characters per inch of figure width


def tick_labels_overlap(fig: Any, ax: Any, axis: str = "x") -> bool:
    """Whether any two visible tick labels of ``ax``'s ``axis`` overlap as drawn (needs a drawn canvas)."""
    renderer = fig.canvas.get_renderer()
    labels = [t for t in (ax.get_xticklabels() if axis == "x" else ax.get_yticklabels())
              if t.get_visible() and t.get_text()]
    boxes = [t.get_window_extent(renderer) for t in labels]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def _readable_ticks(fig: Any, ax: Any) -> None:
    """Fewer ticks until the x labels no longer touch (drawn to measure); turned labels as the last resort."""
    from matplotlib.ticker import MaxNLocator

    for nbins in range(PARITY_TICKS, 1, -1):
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(MaxNLocator(nbins=nbins))
        fig.tight_layout()
        fig.canvas.draw()
        if not tick_labels_overlap(fig, ax, "x"):
            return
    ax.tick_params(axis="x", labelrotation=45)
    for t in ax.get_xticklabels():
        t.set_horizontalalignment("right")


def parity_plot(ref: np.ndarray, pred: np.ndarray, path: str | Path, *, title: str, quantity: str,
                unit: str = "", hexbin_above: int = HEXBIN_ABOVE) -> Path:
    """Predicted against reference with the y = x line; RMSE and MAE in the title."""
    plt = pyplot()
    ref = np.ravel(np.asarray(ref, np.float64))
    pred = np.ravel(np.asarray(pred, np.float64))
    diff = pred - ref
    rmse = float(np.sqrt(np.mean(diff * diff))) if diff.size else math.nan
    mae = float(np.mean(np.abs(diff))) if diff.size else math.nan
    lo = float(min(ref.min(), pred.min())) if ref.size else 0.0
    hi = float(max(ref.max(), pred.max())) if ref.size else 1.0
    pad = 0.03 * (hi - lo) if hi > lo else 1.0
    lo, hi = lo - pad, hi + pad
    fig, ax = plt.subplots(figsize=(4.8, 4.4), dpi=120)
    if ref.size > hexbin_above:
        hb = ax.hexbin(ref, pred, gridsize=80, bins="log", mincnt=1, cmap="viridis", extent=(lo, hi, lo, hi))
        fig.colorbar(hb, ax=ax, label="count")
    else:
        ax.scatter(ref, pred, s=6, alpha=0.6, linewidths=0)
    ax.plot([lo, hi], [lo, hi], color="0.3", lw=0.8, ls="--")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    u = f" ({unit})" if unit else ""
    ax.set_xlabel(f"reference {quantity}{u}")
    ax.set_ylabel(f"predicted {quantity}{u}")
    ax.set_title(f"{title}\nRMSE {rmse:.3g}  MAE {mae:.3g}{u}  n={ref.size}", fontsize=9)
    _readable_ticks(fig, ax)
    return save_figure(fig, path)


def heatmap(values: np.ndarray, rows: Sequence[str], cols: Sequence[str], path: str | Path, *, title: str,
            xlabel: str = "data", ylabel: str = "head", fmt: str = ".3g") -> Path:
    """A matrix with its values written in the cells (NaN cells left blank)."""
    plt = pyplot()
    values = np.asarray(values, np.float64)
    width = max(HEATMAP_MIN_SIZE[0], 1.6 + 1.3 * max(len(cols), 1))
    height = max(HEATMAP_MIN_SIZE[1], 1.4 + 0.6 * max(len(rows), 1))
    fig, ax = plt.subplots(figsize=(width, height), dpi=120)
    masked = np.ma.masked_invalid(values)
    im = ax.imshow(masked, cmap="magma_r", aspect="auto")
    fig.colorbar(im, ax=ax)
    ax.set_xticks(range(len(cols)), labels=list(cols), rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), labels=list(rows))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    finite = values[np.isfinite(values)]
    mid = float(finite.min() + finite.max()) / 2 if finite.size else 0.0
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            if math.isfinite(v):
                ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=8,
                        color="white" if v > mid else "black")
    ax.set_title(textwrap.fill(title, int(TITLE_CHARS_PER_INCH * width * 0.75)), fontsize=9)
    return save_figure(fig, path)
