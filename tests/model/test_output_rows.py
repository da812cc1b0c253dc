"""Heads with types of exactly zero output (a tensor head's ``sel_type``, ``atom_exclude_types``) run descriptor and
fitting on the other atoms' rows only (``MultiTaskModel._atomic``): the result must be the full-frame one.

Parametrised over every descriptor case with every fitting it supports. The frames start with an atom of an
excluded type (se_atten gives padding slots the type of the frame's first atom) and the batch's frames differ in
how many atoms are computed, so some rows are filled with atoms whose output is zero.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from mtbench.model.multitask import MultiTaskModel, output_rows, real_atoms
from tests.model_cases import (DESCRIPTOR_CASES, Frames, combinations, mtbench_nlists, model_config,
                               randomize_mtbench_stats, water_frames)


def _model(desc: str, fit: str) -> MultiTaskModel:
    cfg = model_config(desc, fit)
    fitting = dict(cfg["fitting_net"])
    if fit != "ener":
        fitting["sel_type"] = [0]
    model = MultiTaskModel.from_config(cfg["type_map"], cfg["descriptor"], {"t": fitting}, seed=3)
    data = randomize_mtbench_stats(model.to_dict(), np.random.default_rng(3))
    if fit == "ener":
        data["heads"]["t"]["atom_exclude_types"] = [1]
    return MultiTaskModel.from_dict(data)


def _frames(ntypes: int) -> Frames:
    fr = water_frames(np.random.default_rng(11), 3, 6, np.eye(3) * 7.0, ntypes=ntypes)
    coord, atype = np.roll(fr.coord, -1, axis=1), np.roll(fr.atype, -1, axis=1)  # H first
    atype[1, 5] = 1 - atype[1, 5] if atype[1, 5] < 2 else atype[1, 5]  # frame 1: one oxygen fewer (or more)
    atype[2, -1] = 0  # frame 2: one more
    return Frames(coord, atype, fr.box)


def _full_frame(model: MultiTaskModel, fr: Frames, nlists) -> np.ndarray:
    """The per-atom output computed on every row, as before rows were selected."""
    head = model.heads["t"]
    atype, real = real_atoms(tf.constant(fr.atype, tf.int32))
    nbs = model._neighbors(tf.constant(fr.coord), tf.constant(fr.mt_box()), atype, nlists, model.neighbor_specs())
    d = model.descriptor(nbs, atype)
    return np.asarray(head.atomic(d.descriptor, d.rot_mat, atype, None, None) * real[..., None])


@pytest.mark.parametrize("desc,fit", combinations())
def test_selected_rows_give_the_full_frame_output(desc: str, fit: str) -> None:
    model = _model(desc, fit)
    head = model.heads["t"]
    assert head.zero_types() == {1}
    fr = _frames(len(DESCRIPTOR_CASES[desc].type_map))
    nlists = mtbench_nlists(model.neighbor_specs(), fr, model.ntypes)
    out = model.predict("t", fr.coord, fr.mt_box(), fr.atype, nlists, do_force=False)
    atomic = np.asarray(out["atom_energy"][..., None] if fit == "ener" else out["atomic"])
    ref = _full_frame(model, fr, nlists)
    assert np.abs(ref[fr.atype != 1]).max() > 1e-3  # the computed atoms have real outputs
    np.testing.assert_array_equal(atomic[fr.atype == 1], 0.0)
    np.testing.assert_allclose(atomic, ref, rtol=1e-12, atol=1e-12)


def test_output_rows_cover_every_computed_atom_once_with_atom_0_first() -> None:
    atype = tf.constant([[1, 0, 1, 0, 0], [1, 1, 1, 0, 1], [0, 0, 0, 0, 1]], tf.int32)
    real = tf.constant([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]], tf.float64)
    rows = np.asarray(output_rows(atype, real, [True, False]))
    assert rows.shape == (3, 4)  # frame 2 has four oxygens; frame 0's padding atom 4 is not computed
    for f, (types, mask) in enumerate(zip(atype.numpy(), real.numpy())):
        assert rows[f, 0] == 0 and len(set(rows[f])) == rows.shape[1]
        need = {int(i) for i in np.flatnonzero((types == 0) & (mask > 0))}
        assert need <= set(rows[f])
