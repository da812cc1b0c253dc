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


@pytest.fixture()
def saved(monkeypatch):
    """The figures the plot functions write, drawn as saved: x tick-label overlap, title inside, size (inches)."""
    import mtbench.evaluation.plots as plots
    from mtbench.evaluation.plots import tick_labels_overlap

    out: list[dict] = []
    original = plots.save_figure

    def wrapper(fig, path, dpi=None):
        fig.tight_layout()
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        figbox = fig.bbox
        titles = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.get_title()]
        out.append({"overlap": any(tick_labels_overlap(fig, ax, "x") for ax in fig.axes),
                    "title_inside": all(t.x0 >= figbox.x0 - 1 and t.x1 <= figbox.x1 + 1 and t.y1 <= figbox.y1 + 1
                                        for t in titles),
                    "size": tuple(fig.get_size_inches())})
        return original(fig, path, dpi)

    monkeypatch.setattr(plots, "save_figure", wrapper)
    return out


# energies per atom of the built-in water sets: narrow ranges of long numbers (matplotlib's default ticks for
# these touch); a scatter, and a hexbin whose colorbar narrows the axes
@pytest.mark.parametrize("n, lo, hi", [(40, -0.1452, -0.1437), (40, -0.16, -0.12), (20_000, -0.1448, -0.1446)])
def test_parity_energy_per_atom_tick_labels_do_not_overlap(tmp_path: Path, saved, n: int, lo: float,
                                                           hi: float) -> None:
    ref = np.linspace(lo, hi, n)
    parity_plot(ref, ref + 1e-4, tmp_path / "e.png", title="water_ener: energy_per_atom",
                quantity="energy per atom", unit="eV/atom")
    assert saved and not saved[0]["overlap"]
    assert saved[0]["title_inside"]


def test_one_by_one_heatmap_is_legible_and_its_title_fits(tmp_path: Path, saved) -> None:
    heatmap(np.array([[1.14]]), ["water_dipole"], ["water_dipole"], tmp_path / "h.png",
            title="cross-head rmse: head (row) on data (column)")
    (record,) = saved
    assert record["size"][0] >= 4 and record["size"][1] >= 2.5
    assert record["title_inside"]
    assert not record["overlap"]
