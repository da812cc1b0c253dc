"""Per-display validation: fixed batches (``validation_data.fixed_batches``), every labelled metric present for a
mix of atomic/global dipole systems, and the capped end-of-run evaluation (``validation_data.final_nframes``)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import tiny_spec_dict


def _trainer(tiny_data: Path, tmp_path: Path, **val: object):
    from mtbench.train.run import prepare_spec
    from mtbench.train.trainer import Trainer

    spec = tiny_spec_dict(tiny_data, steps=4)
    for task in spec["training"]["data_dict"].values():
        task["validation_data"].update(val)
    spec = prepare_spec(spec, None)
    return Trainer(spec, tmp_path / "run", progress=False)


def test_mixed_dipole_validation_has_every_labelled_metric(tiny_data: Path, tmp_path: Path) -> None:
    """numb_btch=1 drawn only from the system without atomic labels used to give rmse_lc = NaN."""
    trainer = _trainer(tiny_data, tmp_path)
    rt = trainer.runtime["water_dipole"]
    paths = [s.path for s in rt.val_data.systems]
    glob = next(i for i, p in enumerate(paths) if "global_system" in p)
    rt.val_data.probs = np.eye(len(paths))[glob]  # every random batch from the global-only system
    assert not rt.val_data.systems[glob].has_label("atomic_dipole")
    for _ in range(3):
        val = trainer.validate(rt)
        assert set(val) == set(rt.loss.metric_names)
        assert all(math.isfinite(v) for v in val.values()), val


def test_fixed_batches_are_the_same_at_every_display_and_across_jobs(tiny_data: Path, tmp_path: Path) -> None:
    a = _trainer(tiny_data, tmp_path / "a", fixed_batches=True, numb_btch=2)
    rt = a.runtime["water_ener"]
    first = a.validate(rt)
    drawn = [id(x[0]) for x in rt.fixed]
    assert a.validate(rt) == first  # same weights, same frames: the very same numbers
    assert [id(x[0]) for x in rt.fixed] == drawn
    b = _trainer(tiny_data, tmp_path / "b", fixed_batches=True, numb_btch=2)
    b.validate(b.runtime["water_ener"])
    def frames(t):  # noqa: ANN001, ANN202
        return [x[0]["coord"].numpy().tobytes() for x in t.runtime["water_ener"].fixed]

    assert frames(a) == frames(b)  # same seed: the same frames in another job
    # random batches (the default) differ between displays
    c = _trainer(tiny_data, tmp_path / "c", numb_btch=1)
    rtc = c.runtime["water_ener"]
    assert rtc.fixed_rng is None
    values = {tuple(c.validate(rtc).values()) for _ in range(6)}
    assert len(values) > 1


def test_capped_final_evaluation_is_a_fixed_seeded_subset(tiny_data: Path, tmp_path: Path) -> None:
    from mtbench.cli.test import main
    from mtbench.rundir import RunDir
    from mtbench.train.run import run_training

    spec = tiny_spec_dict(tiny_data, steps=2)
    for task in spec["training"]["data_dict"].values():
        task["validation_data"]["final_nframes"] = 1
    run_dir = tmp_path / "run"
    run_training(spec, run_dir=run_dir, tracking={"backend": "none"}, output_dir=tmp_path, progress=False)
    final = RunDir(run_dir).read_summary().extra["final_eval"]["final"]
    ckpt = RunDir(run_dir).latest_checkpoint()
    for task in ("water_ener", "water_dipole"):
        nsys = len(list((tiny_data / ("water_tip3p" if task == "water_ener" else "water_dipole") / "val").glob("**/type.raw")))
        assert final[task]["nframes"] == nsys  # one frame per system
        report = main(["-m", str(ckpt), "--head", task, "-n", "1", "--shuffle-test", "-r", "1", "--no-plots"])
        expected = {k: v for k, v in report["heads"][task]["metrics"].items() if v is not None and math.isfinite(v)}
        assert final[task]["metrics"] == expected


def test_final_nframes_must_be_positive(tiny_data: Path) -> None:
    from mtbench.errors import SpecError
    from mtbench.train.run import prepare_spec

    spec = tiny_spec_dict(tiny_data)
    spec["training"]["data_dict"]["water_ener"]["validation_data"]["final_nframes"] = 0
    with pytest.raises(SpecError, match="final_nframes"):
        prepare_spec(spec, None)
