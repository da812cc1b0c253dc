"""lcurve files in DeePMD's layout: ``#`` header of step, ``<metric>_val``/``<metric>_trn`` pairs and ``lr``; one
fixed-width row per display step that ``numpy.genfromtxt(names=True)`` (how DeePMD's docs read it) parses."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mtbench.train.lcurve import LcurveWriter


def test_layout_and_values(tmp_path: Path) -> None:
    path = tmp_path / "lcurve.water_ener.out"
    w = LcurveWriter(path, ["rmse", "rmse_e", "rmse_f"])
    w.write(0, {"rmse": 12.5, "rmse_e": 0.0123, "rmse_f": 0.4}, {"rmse": 13.0, "rmse_e": 0.02, "rmse_f": 0.41}, 1e-3)
    w.write(100, {"rmse": 1.25}, {"rmse": 1.5, "rmse_e": 3.4e-4, "rmse_f": 0.05}, 5.6e-4)
    w.close()
    lines = path.read_text().splitlines()
    assert lines[0] == ("#  step    rmse_val    rmse_trn  rmse_e_val  rmse_e_trn  rmse_f_val  rmse_f_trn"
                        "       lr")
    assert lines[1] == "      0    1.25e+01    1.30e+01    1.23e-02    2.00e-02    4.00e-01    4.10e-01  1.0e-03"
    assert len(lines) == 3
    data = np.genfromtxt(path, names=True)
    assert data.dtype.names == ("step", "rmse_val", "rmse_trn", "rmse_e_val", "rmse_e_trn", "rmse_f_val",
                                "rmse_f_trn", "lr")
    assert list(data["step"]) == [0, 100]
    assert data["rmse_e_trn"][1] == 3.4e-4 and data["lr"][1] == 5.6e-4
    assert math.isnan(data["rmse_e_val"][1]) and math.isnan(data["rmse_f_val"][1])  # missing -> nan


def test_append_keeps_one_header_and_overwrite_starts_again(tmp_path: Path) -> None:
    path = tmp_path / "lcurve.t.out"
    for step, append in ((0, False), (10, True), (20, True)):
        w = LcurveWriter(path, ["rmse"], append=append)
        w.write(step, {"rmse": 1.0}, {"rmse": 2.0}, 1e-3)
        w.close()
    lines = path.read_text().splitlines()
    assert [line.startswith("#") for line in lines] == [True, False, False, False]
    assert np.loadtxt(path, ndmin=2)[:, 0].tolist() == [0, 10, 20]
    w = LcurveWriter(path, ["rmse"])
    w.close()
    assert path.read_text().count("\n") == 1
    fresh = tmp_path / "new.out"
    LcurveWriter(fresh, ["rmse"], append=True).close()  # appending to nothing writes the header
    assert fresh.read_text().startswith("#  step")
