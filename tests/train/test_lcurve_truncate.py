"""A resumed run cuts its lcurve files back to the checkpoint's step: every step once, the header kept, a torn
last row (the killed writer's) dropped."""

from __future__ import annotations

from pathlib import Path

from mtbench.train.lcurve import LcurveWriter, read_lcurve, truncate_lcurve


def test_truncate_keeps_rows_up_to_the_step_and_drops_a_torn_row(tmp_path: Path) -> None:
    path = tmp_path / "lcurve.default.out"
    with LcurveWriter(path, ["rmse"]) as w:
        for step in (0, 3, 6, 9, 12):
            w.write(step, {"rmse": step + 0.5}, {"rmse": step + 0.25}, 1e-3)
    with path.open("a") as f:
        f.write("     15    1.0")  # torn: no newline
    assert truncate_lcurve(path, 6) == 2
    assert read_lcurve(path).steps == [0, 3, 6]
    assert path.read_text().startswith("#") and path.read_text().endswith("\n")
    with LcurveWriter(path, ["rmse"], append=True) as w:  # the resumed run appends from step 9 on
        w.write(9, {"rmse": 9.5}, {"rmse": 9.25}, 1e-3)
    assert read_lcurve(path).steps == [0, 3, 6, 9]
    assert truncate_lcurve(path, 9) == 0 and truncate_lcurve(tmp_path / "absent.out", 3) == 0
