"""``mixed:N`` batches through the model and the losses: padding atoms (type -1) change nothing.

A padded batch of frames from systems of different sizes must give, frame by frame, what each frame gives alone:
the same energy, force, virial and atomic outputs, exactly zero on padding atoms; its loss and gradients must be the
per-frame losses combined by DeePMD-kit's reduction (energy/virial: a mean over frames, per-atom terms: pooled over
the batch's real atoms, dpmodel/loss/reduction.py's ``masked_atom_mean``). Physics (translation, permutation) holds
with padding, and the padding atoms' coordinates are irrelevant.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from mtbench.data.dataset import TaskDataset
from mtbench.data.requirements import ENERGY, FORCE, VIRIAL, TENSOR_LABELS
from mtbench.loss import build_loss
from mtbench.loss.base import pooled_atom_mean
from mtbench.model.inputs import predict_inputs
from mtbench.model.multitask import MultiTaskModel
from mtbench.train.step import batch_signature, to_inputs

TYPE_MAP = ["O", "H"]
BOX = 5.0
ATTEN = {"sel": 30, "rcut": 3.0, "rcut_smth": 0.5, "neuron": [4, 8], "axis_neuron": 3, "tebd_dim": 5, "attn": 6,
         "seed": 1}
DESCRIPTORS = {
    "se_atten": {**ATTEN, "type": "se_atten", "attn_layer": 2},
    "se_atten_v2": {**ATTEN, "type": "se_atten_v2", "attn_layer": 1},
    "dpa1_strip_one_side": {**ATTEN, "type": "dpa1", "attn_layer": 0, "tebd_input_mode": "strip",
                            "type_one_side": True},
}
HEADS = {"e": {"type": "ener", "neuron": [8, 8], "seed": 1},
         "d": {"type": "dipole", "sel_type": [0], "neuron": [8], "seed": 2}}


def _write(root: Path, n_o: int, nframes: int, seed: int, *, nopbc: bool = False) -> str:
    """A water-like system of ``3 n_o`` atoms (H first: the frame's first atom is not always O) with labels."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    natoms = 3 * n_o
    types = np.array([1] * (2 * n_o) + [0] * n_o)
    (root / "type.raw").write_text("\n".join(map(str, types)) + "\n")
    (root / "type_map.raw").write_text("\n".join(TYPE_MAP) + "\n")
    if nopbc:
        (root / "nopbc").write_text("")
    s = root / "set.000"
    s.mkdir()
    o = rng.uniform(0.0, BOX, size=(nframes, n_o, 3))
    h = np.repeat(o, 2, axis=1) + rng.normal(scale=0.6, size=(nframes, 2 * n_o, 3))
    np.save(s / "coord.npy", np.concatenate([h, o], axis=1).reshape(nframes, -1))
    if not nopbc:
        np.save(s / "box.npy", np.tile(np.eye(3).reshape(1, 9) * BOX, (nframes, 1)))
    np.save(s / "energy.npy", rng.normal(size=nframes))
    np.save(s / "force.npy", rng.normal(size=(nframes, natoms * 3)))
    np.save(s / "virial.npy", rng.normal(size=(nframes, 9)))
    np.save(s / "dipole.npy", rng.normal(size=(nframes, 3)))
    np.save(s / "atomic_dipole.npy", rng.normal(size=(nframes, n_o * 3)))  # O atoms only (sel_type [0])
    return str(root)


@pytest.fixture(scope="module")
def systems(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("mixed")
    return [_write(root / "small", 2, 3, 0), _write(root / "large", 4, 3, 1), _write(root / "mol", 3, 2, 2,
                                                                                     nopbc=True)]


def _model(name: str) -> MultiTaskModel:
    model = MultiTaskModel.from_config(TYPE_MAP, dict(DESCRIPTORS[name]), HEADS, seed=3)
    rng = np.random.default_rng(7)  # nonzero statistics: padding slots and rows are not trivially zero
    desc = model.descriptor
    desc.davg.assign(rng.normal(scale=0.1, size=desc.davg.shape))
    desc.dstd.assign(rng.uniform(0.5, 1.5, size=desc.dstd.shape))
    model.heads["e"].out_bias.assign(rng.normal(size=model.heads["e"].out_bias.shape))
    return model


def _mixed_batch(model: MultiTaskModel, systems: list[str], requirements: list, seed: int = 0) -> dict:
    data = TaskDataset(systems, TYPE_MAP, requirements, batch_size="mixed:5")
    rng = np.random.default_rng(seed)
    for _ in range(20):
        batch = data.get_batch(rng, nspecs=model.neighbor_specs())
        if len(set(batch["real_natoms"].tolist())) > 2:  # frames of all three sizes
            return {"data": data, **batch}
    raise AssertionError("no batch mixing all three systems")


def _single(model: MultiTaskModel, data: TaskDataset, sys_idx: int, frame: int) -> dict:
    system = data.systems[sys_idx]
    batch = system.frames([frame])
    batch["nlist"] = {spec: system.neighbor_data(spec).take([frame]) for spec in model.neighbor_specs()}
    return batch


def _inputs(model: MultiTaskModel, batch: dict, requirements: list) -> dict[str, tf.Tensor]:
    nspecs = model.neighbor_specs()
    return to_inputs(batch, batch_signature(requirements, nspecs), nspecs)


def _predict(model: MultiTaskModel, head: str, inputs: dict[str, tf.Tensor]) -> dict[str, np.ndarray]:
    out = predict_inputs(model, head, inputs, model.neighbor_specs(), do_force=True)
    return {k: v.numpy() for k, v in out.items()}


@pytest.mark.parametrize("name", sorted(DESCRIPTORS))
def test_padded_frames_predict_what_each_frame_predicts_alone(systems: list[str], name: str) -> None:
    model = _model(name)
    req = [ENERGY, FORCE, VIRIAL]
    batch = _mixed_batch(model, systems, req)
    data = batch["data"]
    mixed = _predict(model, "e", _inputs(model, batch, req))
    dip = _predict(model, "d", _inputs(model, batch, req))
    for k, (i, frame) in enumerate(zip(batch["sys_idx"], batch["frame_idx"], strict=True)):
        n = int(batch["real_natoms"][k])
        alone = _inputs(model, _single(model, data, int(i), int(frame)), req)
        one = _predict(model, "e", alone)
        np.testing.assert_allclose(mixed["energy"][k], one["energy"][0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(mixed["atom_energy"][k, :n], one["atom_energy"][0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(mixed["force"][k, :n], one["force"][0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(mixed["virial"][k], one["virial"][0], rtol=1e-10, atol=1e-12)
        assert (mixed["atom_energy"][k, n:] == 0).all() and (mixed["force"][k, n:] == 0).all()
        one_d = _predict(model, "d", alone)
        np.testing.assert_allclose(dip["atomic"][k, :n], one_d["atomic"][0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dip["global"][k], one_d["global"][0], rtol=1e-12, atol=1e-12)
        assert (dip["atomic"][k, n:] == 0).all()
    assert np.abs(mixed["force"]).max() > 0  # a nontrivial model: the checks above can fail


def _loss_and_grads(model: MultiTaskModel, head: str, loss_cfg: dict, inputs: dict, *,
                    padded: bool) -> tuple[float, list[np.ndarray]]:
    loss = build_loss(loss_cfg, HEADS[head], len(TYPE_MAP), padded=padded)
    variables = model.trainable_variables_of(head)
    with tf.GradientTape() as tape:
        pred = predict_inputs(model, head, inputs, model.neighbor_specs(), do_force=head == "e")
        value, _ = loss(pred, inputs, tf.constant(1.0, tf.float64))
    grads = tape.gradient(value, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return float(value), [g.numpy() for g in grads]


FRAME_TERMS = {"type": "ener", "start_pref_e": 1.0, "limit_pref_e": 1.0, "start_pref_f": 0.0, "limit_pref_f": 0.0,
               "start_pref_v": 0.5, "limit_pref_v": 0.5}
ATOM_TERMS = {"type": "ener", "start_pref_e": 0.0, "limit_pref_e": 0.0, "start_pref_f": 2.0, "limit_pref_f": 2.0,
              "start_pref_v": 0.0, "limit_pref_v": 0.0}


@pytest.mark.parametrize(("loss_cfg", "weighting"), [(FRAME_TERMS, "frame"), (ATOM_TERMS, "atom")])
def test_padded_loss_and_gradients_combine_the_per_frame_ones(systems: list[str], loss_cfg: dict,
                                                              weighting: str) -> None:
    """Energy/virial: the mean of the frames' losses; force: weighted by each frame's atoms (pooled)."""
    model = _model("se_atten")
    req = [ENERGY, FORCE, VIRIAL]
    batch = _mixed_batch(model, systems, req, seed=1)
    got, got_grads = _loss_and_grads(model, "e", loss_cfg, _inputs(model, batch, req), padded=True)
    weights = batch["real_natoms"].astype(float) if weighting == "atom" else np.ones(len(batch["real_natoms"]))
    weights = weights / weights.sum()
    want, want_grads = 0.0, None
    for w, i, frame in zip(weights, batch["sys_idx"], batch["frame_idx"], strict=True):
        alone = _inputs(model, _single(model, batch["data"], int(i), int(frame)), req)
        value, grads = _loss_and_grads(model, "e", loss_cfg, alone, padded=False)
        want += w * value
        want_grads = [w * g for g in grads] if want_grads is None else [a + w * g for a, g in zip(want_grads, grads)]
    np.testing.assert_allclose(got, want, rtol=1e-11)
    for g, h in zip(got_grads, want_grads, strict=True):
        np.testing.assert_allclose(g, h, rtol=1e-8, atol=1e-12 * max(1.0, np.abs(h).max()))
    # unweighted means would differ: the reduction is observable here
    if weighting == "atom":
        plain = np.mean([_loss_and_grads(model, "e", loss_cfg, _inputs(model, _single(
            model, batch["data"], int(i), int(f)), req), padded=False)[0] for i, f in zip(batch["sys_idx"],
                                                                                        batch["frame_idx"])])
        assert abs(plain - want) > 1e-6 * abs(want)


def test_padded_tensor_loss_combines_the_per_frame_ones(systems: list[str]) -> None:
    """Dipole: atomic term pooled over the selected atoms, global term a mean over frames of per-frame losses."""
    model = _model("se_atten_v2")
    req = TENSOR_LABELS["dipole"].requirements([0])
    batch = _mixed_batch(model, systems, req, seed=2)
    for cfg, weighting in (({"type": "tensor", "pref": 1.0, "pref_atomic": 0.0}, "frame"),
                           ({"type": "tensor", "pref": 0.0, "pref_atomic": 1.0}, "atom")):
        got, _ = _loss_and_grads(model, "d", cfg, _inputs(model, batch, req), padded=True)
        nsel = batch["real_natoms"] / 3.0  # one O in three atoms
        weights = nsel if weighting == "atom" else np.ones_like(nsel)
        values = [_loss_and_grads(model, "d", cfg, _inputs(model, _single(model, batch["data"], int(i), int(f)),
                                                           req), padded=False)[0]
                  for i, f in zip(batch["sys_idx"], batch["frame_idx"], strict=True)]
        np.testing.assert_allclose(got, np.dot(weights, values) / weights.sum(), rtol=1e-11)


def test_padded_loss_on_a_one_system_batch_is_the_plain_loss(systems: list[str]) -> None:
    model = _model("se_atten")
    req = [ENERGY, FORCE, VIRIAL]
    data = TaskDataset(systems[1:2], TYPE_MAP, req, batch_size=3)
    batch = data.get_batch(np.random.default_rng(0), nspecs=model.neighbor_specs())
    inputs = _inputs(model, batch, req)
    cfg = {**FRAME_TERMS, "start_pref_f": 3.0, "limit_pref_f": 3.0}
    plain, plain_grads = _loss_and_grads(model, "e", cfg, inputs, padded=False)
    padded, padded_grads = _loss_and_grads(model, "e", cfg, inputs, padded=True)
    np.testing.assert_allclose(padded, plain, rtol=1e-13)
    for a, b in zip(padded_grads, plain_grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def test_pooled_atom_mean_is_deepmds_masked_atom_mean() -> None:
    reduction = pytest.importorskip("deepmd.dpmodel.loss.reduction")
    rng = np.random.default_rng(0)
    elem = rng.uniform(size=(4, 7, 3))
    mask = (np.arange(7)[None, :] < np.array([7, 3, 5, 1])[:, None]).astype(float)
    want = reduction.masked_atom_mean(elem, mask, 3)
    got = pooled_atom_mean(tf.constant(elem), tf.constant(mask)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-14)


def _permuted(batch: dict, k: int, perm: np.ndarray) -> dict:
    """Frame ``k``'s real atoms reordered by ``perm`` (new atom a is old atom perm[a]); lists renumbered."""
    out = {key: (value.copy() if isinstance(value, np.ndarray) else value) for key, value in batch.items()}
    n = perm.size
    inv = np.empty_like(perm)
    inv[perm] = np.arange(n)
    for key in ("coord", "atype", "force"):
        out[key][k, :n] = batch[key][k, perm]
    out["nlist"] = {}
    for spec, (idx, shift) in batch["nlist"].items():
        idx, shift = idx.copy(), shift.copy()
        rows, rows_shift = idx[k, perm], shift[k, perm]
        idx[k, :n] = np.where(rows >= 0, inv[np.maximum(rows, 0)], -1)
        shift[k, :n] = rows_shift
        out["nlist"][spec] = (idx, shift)
    return out


@pytest.mark.parametrize("name", ["se_atten", "se_atten_v2"])
def test_physics_holds_with_padding(systems: list[str], name: str) -> None:
    model = _model(name)
    req = [ENERGY, FORCE, VIRIAL]
    batch = _mixed_batch(model, systems, req, seed=3)
    base = _predict(model, "e", _inputs(model, batch, req))
    real = batch["atype"] >= 0
    # padding atoms' coordinates are irrelevant; translating every frame moves nothing
    moved = dict(batch)
    rng = np.random.default_rng(1)
    moved["coord"] = np.where(real[..., None], batch["coord"] + rng.normal(size=(len(real), 1, 3)),
                              rng.uniform(-50, 50, size=batch["coord"].shape))
    shifted = _predict(model, "e", _inputs(model, moved, req))
    for key in ("energy", "atom_energy", "force", "virial"):
        np.testing.assert_allclose(shifted[key], base[key], rtol=1e-10, atol=1e-12, err_msg=key)
    # permuting the real atoms of the largest frame permutes its outputs, the others are untouched
    k = int(np.argmax(batch["real_natoms"]))
    perm = np.random.default_rng(2).permutation(int(batch["real_natoms"][k]))
    perm_out = _predict(model, "e", _inputs(model, _permuted(batch, k, perm), req))
    np.testing.assert_allclose(perm_out["energy"], base["energy"], rtol=1e-12)
    np.testing.assert_allclose(perm_out["force"][k, : perm.size], base["force"][k, perm], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(perm_out["virial"], base["virial"], rtol=1e-10, atol=1e-12)
    # forces of every frame sum to zero (no net force from padding)
    np.testing.assert_allclose(base["force"].sum(axis=1), 0.0, atol=1e-10)
