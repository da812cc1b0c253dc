"""Parity plots and heatmaps: PNG files, statistics in the title, hexbin for big sets, NaN cells left blank."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mtbench.evaluation.plots import heatmap, parity_plot

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture()
def calls(monkeypatch):
    """Which matplotlib drawing calls a figure used, and the titles it got."""
    from matplotlib.axes import Axes

    seen: dict[str, list] = {"hexbin": [], "scatter": [], "title": [], "text": []}
    for name in seen:
        original = getattr(Axes, "set_title" if name == "title" else name)

        def wrapper(self, *args, _name=name, _original=original, **kwargs):
            seen[_name].append(args)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Axes, "set_title" if name == "title" else name, wrapper)
    return seen


def test_parity_small_set_is_a_scatter_with_stats_in_title(tmp_path: Path, calls) -> None:
    ref = np.linspace(-1, 1, 50)
    pred = ref + 0.1
    path = parity_plot(ref, pred, tmp_path / "p.png", title="head: force", quantity="force", unit="eV/Å")
    assert path.read_bytes()[:8] == PNG
    assert len(calls["scatter"]) == 1 and not calls["hexbin"]
    assert "RMSE 0.1  MAE 0.1 (eV/Å)  n=50" in calls["title"][0][0]


def test_parity_big_set_is_a_hexbin(tmp_path: Path, calls) -> None:
    ref = np.random.default_rng(0).normal(size=20_000)
    parity_plot(ref, ref * 1.01, tmp_path / "big.png", title="t", quantity="q")
    assert len(calls["hexbin"]) == 1 and not calls["scatter"]


def test_heatmap_leaves_nan_cells_blank(tmp_path: Path, calls) -> None:
    values = np.array([[0.1, np.nan], [0.3, 0.4]])
    path = heatmap(values, ["a", "b"], ["x", "y"], tmp_path / "h.png", title="rmse_f")
    assert path.read_bytes()[:8] == PNG
    assert sorted(c[2] for c in calls["text"]) == ["0.1", "0.3", "0.4"]
