"""The training loop: determinism, restart, which variables a step touches, no retracing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mtbench.train.run import prepare_spec
from mtbench.train.trainer import Trainer
from tests.conftest import tiny_spec_dict


def make_trainer(spec: dict, run_dir: Path) -> Trainer:
    return Trainer(prepare_spec(spec, None), run_dir, progress=False)


def weights(trainer: Trainer) -> list[np.ndarray]:
    return [v.numpy() for v in trainer.model.trainable_variables]


@pytest.fixture(scope="module")
def seed1_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Trainer:
    """The default tiny spec (seed 1, 6 steps) trained once: the reference of the three tests below, which each
    trained it again (an in-process training traces its step functions anew: ~10 s each on 2 cores)."""
    trainer = make_trainer(tiny_spec_dict(tiny_data), tmp_path_factory.mktemp("seed1") / "a")
    trainer.train()
    return trainer


def test_same_seed_same_lcurves(seed1_run: Trainer, tiny_spec, tmp_path: Path) -> None:
    make_trainer(tiny_spec(), tmp_path / "b").train()
    for task in ("water_ener", "water_dipole"):
        a = (seed1_run.run_dir / f"lcurve.{task}.out").read_text()
        b = (tmp_path / "b" / f"lcurve.{task}.out").read_text()
        assert a == b and len(a.splitlines()) == 1 + 4  # header + steps 0, 2, 4, 6


def test_different_seed_differs(seed1_run: Trainer, tiny_spec, tmp_path: Path) -> None:
    tb = make_trainer(tiny_spec(seed=2), tmp_path / "b")
    tb.train()
    assert any(not np.array_equal(x, y) for x, y in zip(weights(seed1_run), weights(tb)))


def test_restart_gives_identical_weights(seed1_run: Trainer, tiny_spec, tmp_path: Path) -> None:
    full = seed1_run  # tiny_spec(steps=6), trained uninterrupted
    first = make_trainer(tiny_spec(steps=6), tmp_path / "first")
    first.numb_steps = 3  # stop half way, as if killed right after the step-3 checkpoint
    first.train()
    spec = tiny_spec(steps=6)
    spec["training"]["restart"] = str(tmp_path / "first")
    second = make_trainer(spec, tmp_path / "second")
    assert second.step == 3
    second.train()
    for x, y in zip(weights(full), weights(second)):
        np.testing.assert_array_equal(x, y)
    assert second.sampler.counts == full.sampler.counts


def test_step_on_one_task_leaves_other_head_untouched(tiny_spec, tmp_path: Path) -> None:
    tr = make_trainer(tiny_spec(), tmp_path)
    before = {id(v): v.numpy().copy() for v in tr.model.trainable_variables}
    rt = tr.runtime["water_ener"]
    from mtbench.train.step import to_inputs
    import tensorflow as tf

    batch = rt.train_data.get_batch(rt.train_rng, nspecs=rt.steps.nspecs)
    rt.steps.train(to_inputs(batch, rt.steps.signature, rt.steps.nspecs), tf.constant(1e-3, tf.float64),
                   tf.constant(1.0, tf.float64))

    def changed(module) -> bool:
        return any(not np.array_equal(before[id(v)], v.numpy()) for v in module.trainable_variables)

    assert changed(tr.model.descriptor)
    assert changed(tr.model.heads["water_ener"].fitting)
    assert not changed(tr.model.heads["water_dipole"].fitting)


def test_no_retracing_across_systems_and_steps(tiny_spec, tmp_path: Path) -> None:
    tr = make_trainer(tiny_spec(steps=10), tmp_path)
    tr.train()
    for task, rt in tr.runtime.items():
        # dipole data has two systems (atomic-only and global-only labels): still one trace each
        assert rt.steps.trace_counts == {"train": 1, "eval": 1}, task


def test_sampling_counts_sum_to_steps(tiny_spec, tmp_path: Path) -> None:
    tr = make_trainer(tiny_spec(steps=10), tmp_path)
    summary = tr.train()
    assert sum(summary["counts"].values()) == 10
    assert summary["steps"] == 10
    # each task's step time (for comparing runs with different mixes of tasks), its traced first step apart
    timing = summary["timing"]
    assert set(timing["task_first_s"]) == set(summary["counts"])
    assert timing["task_steps"] == {t: n - 1 for t, n in summary["counts"].items() if n > 1}
    assert all(0 < timing["task_s"][t] < timing["task_first_s"][t] * timing["task_steps"][t] * 10
               for t in timing["task_s"])


def test_missing_label_for_nonzero_prefactor_is_an_error(tiny_spec, tmp_path: Path) -> None:
    from mtbench.errors import SpecError

    spec = tiny_spec(tasks=("water_ener",))
    spec["loss_dict"]["water_ener"]["start_pref_v"] = 1.0  # the tiny data has virials; atom_ener it has not
    spec["loss_dict"]["water_ener"]["start_pref_ae"] = 1.0
    with pytest.raises(SpecError, match="atom_ener"):
        make_trainer(spec, tmp_path)
