"""se_atten / se_atten_v2 models obey the physics: invariance and equivariance, forces and virials as energy
derivatives, and (smooth variants) no jump when a neighbour crosses rcut.

The se_atten variants keep DeePMD's ``set_davg_zero`` default: with a nonzero ``davg`` the reference (and so
mtbench) lets padding slots depend on the type of the frame's first atom unless the type embedding is stripped and
smooth (se_atten_v2), which breaks permutation invariance (see mtbench/model/descriptor/se_atten.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mtbench.data.neighbor import build_neighbor_list
from mtbench.model.multitask import MultiTaskModel
from tests.physics.fd import assert_force_virial_are_energy_derivatives

RCUT, RCUT_SMTH = 4.0, 0.5
COMMON = {"sel": 30, "rcut": RCUT, "rcut_smth": RCUT_SMTH, "neuron": [4, 8], "axis_neuron": 3, "tebd_dim": 4,
          "attn": 6, "attn_layer": 2}
VARIANTS: dict[str, dict[str, Any]] = {
    "concat": {**COMMON, "type": "se_atten"},
    "concat_smooth_one_side_excl": {**COMMON, "type": "se_atten", "smooth_type_embedding": True,
                                    "type_one_side": True, "exclude_types": [[0, 1]]},
    "strip_attn_mask": {**COMMON, "type": "se_atten", "stripped_type_embedding": True, "attn_mask": True},
    "v2": {**COMMON, "type": "se_atten_v2"},
}
FITTINGS = {"ener": {"neuron": [10, 10]}, "dipole": {"type": "dipole", "neuron": [10, 10]},
            "polar": {"type": "polar", "neuron": [10, 10], "fit_diag": False}}


def make_model(variant: str, fitting: str, seed: int = 3) -> MultiTaskModel:
    """A fresh mtbench model with statistics shaped like real ones (radial mean, shared angular std)."""
    mt = MultiTaskModel.from_config(["O", "H"], VARIANTS[variant], {"t": FITTINGS[fitting]}, seed=seed)
    d = mt.descriptor
    rng = np.random.default_rng(seed)
    shape = d.davg.shape
    if not d.set_davg_zero:
        d.davg.assign(np.concatenate([rng.normal(0, 0.1, shape[:-1] + (1,)), np.zeros(shape[:-1] + (3,))], -1))
    std_r, std_a = rng.uniform(0.5, 1.5, shape[:-1] + (1,)), rng.uniform(0.5, 1.5, shape[:-1] + (1,))
    d.dstd.assign(np.concatenate([std_r, np.repeat(std_a, 3, -1)], -1))
    return mt


def random_frame(rng: np.random.Generator, n: int = 24, periodic: bool = True, min_dist: float = 0.9):
    """Atoms no closer than ``min_dist`` in a slightly skewed 7 A box (or a 3 A-radius blob); two types."""
    box = np.eye(3) * 7.0 + rng.normal(0, 0.3, (3, 3))
    pts: list[np.ndarray] = []
    while len(pts) < n:
        p = rng.uniform(0, 1, 3) @ box if periodic else rng.normal(0, 1.5, 3)
        ok = True
        for q in pts:
            d = p - q
            if periodic:
                frac = d @ np.linalg.inv(box)
                d = (frac - np.rint(frac)) @ box
            ok = ok and np.linalg.norm(d) > min_dist
        if ok:
            pts.append(p)
    atype = rng.integers(0, 2, n)
    atype[:2] = [0, 1]
    return np.array(pts)[None], atype[None], (box[None] if periodic else None)


def mtbench_nlists(mt: MultiTaskModel, coord: np.ndarray, atype: np.ndarray, box: np.ndarray | None) -> dict:
    """mtbench's own neighbour lists (its data layer), per spec: (idx [nf, N, nnei], shift [nf, N, nnei, 3])."""
    out = {}
    for spec in mt.neighbor_specs():
        lists = [build_neighbor_list(coord[f], None if box is None else box[f], atype[f], spec, mt.ntypes)
                 for f in range(len(coord))]
        out[spec] = (np.stack([x[0] for x in lists]), np.stack([x[1].astype(np.int32) for x in lists]))
    return out


def predict(mt: MultiTaskModel, coord, atype, box, **kw) -> dict[str, np.ndarray]:
    mt_box = np.zeros((len(coord), 3, 3)) if box is None else box
    out = mt.predict("t", coord, mt_box, atype, mtbench_nlists(mt, coord, atype, box), **kw)
    return {k: np.asarray(v) for k, v in out.items()}


def rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


@pytest.mark.parametrize("fitting", sorted(FITTINGS))
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_symmetries(variant: str, fitting: str) -> None:
    """Rotation: E and scalars invariant, forces/dipoles rotate, polar -> R^T a R; translation and atom
    permutation leave everything unchanged (permuted per atom)."""
    rng = np.random.default_rng(5)
    mt = make_model(variant, fitting)
    for periodic in (True, False):
        coord, atype, box = random_frame(rng, periodic=periodic)
        base = predict(mt, coord, atype, box)
        rot = rotation(rng)
        rotated = predict(mt, coord @ rot, atype, None if box is None else box @ rot)
        shifted = predict(mt, coord + rng.normal(0, 3.0, 3), atype, box)
        perm = rng.permutation(coord.shape[1])
        permuted = predict(mt, coord[:, perm], atype[:, perm], box)
        if fitting == "ener":
            scale = np.max(np.abs(base["atom_energy"]))
            for other in (rotated, shifted, permuted):
                np.testing.assert_allclose(other["energy"], base["energy"], rtol=1e-12, atol=1e-12 * scale)
            np.testing.assert_allclose(rotated["atom_energy"], base["atom_energy"], atol=1e-11 * scale)
            np.testing.assert_allclose(permuted["atom_energy"], base["atom_energy"][:, perm], atol=1e-11 * scale)
            fscale = np.max(np.abs(base["force"]))
            np.testing.assert_allclose(rotated["force"], base["force"] @ rot, atol=1e-10 * fscale)
            np.testing.assert_allclose(shifted["force"], base["force"], atol=1e-10 * fscale)
            np.testing.assert_allclose(permuted["force"], base["force"][:, perm], atol=1e-10 * fscale)
            vir = base["virial"].reshape(3, 3)
            np.testing.assert_allclose(rotated["virial"].reshape(3, 3), rot.T @ vir @ rot,
                                       atol=1e-10 * np.max(np.abs(vir)))
            continue
        scale = np.max(np.abs(base["atomic"]))
        if fitting == "dipole":
            want_rot = base["atomic"] @ rot
        else:
            a = base["atomic"].reshape(-1, 3, 3)
            want_rot = (rot.T @ a @ rot).reshape(base["atomic"].shape)
        np.testing.assert_allclose(rotated["atomic"], want_rot, atol=1e-11 * scale)
        np.testing.assert_allclose(shifted["atomic"], base["atomic"], atol=1e-11 * scale)
        np.testing.assert_allclose(permuted["atomic"], base["atomic"][:, perm], atol=1e-11 * scale)
        np.testing.assert_allclose(permuted["global"], base["global"], atol=1e-10 * scale)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_force_and_virial_are_energy_derivatives(variant: str) -> None:
    """F = -dE/dx and virial = -dE/d(strain) by central differences (float64, neighbour list held fixed)."""
    rng = np.random.default_rng(9)
    mt = make_model(variant, "ener")
    coord, atype, box = random_frame(rng, n=20)
    nl = mtbench_nlists(mt, coord, atype, box)
    assert_force_virial_are_energy_derivatives(mt, coord, box, atype, nl, [(0, 0), (1, 2), (7, 1), (13, 2)])


def crossing_energies(variant: str, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Energy and forces with an atom at ``rcut -/+ delta`` from atom 0 and beyond rcut of every other atom."""
    mt = make_model(variant, "ener")
    rng = np.random.default_rng(4)
    others = np.stack([rng.uniform(-2.5, -0.8, 5), rng.uniform(-1.2, 1.2, 5), rng.uniform(-1.2, 1.2, 5)], -1)
    rot = rotation(rng)
    energies, forces = [], []
    for r in (RCUT - delta, RCUT + delta):
        coord = (np.concatenate([np.zeros((1, 3)), others, [[r, 0.0, 0.0]]]) @ rot)[None]
        atype = np.array([[0, 1, 0, 1, 1, 0, 0]])  # centre and crossing atom type 0: not an excluded pair
        out = predict(mt, coord, atype, None)
        energies.append(out["energy"][0])
        forces.append(out["force"][0])
    return np.array(energies), np.array(forces)


@pytest.mark.parametrize("variant", ["v2", "concat_smooth_one_side_excl"])
def test_smooth_across_rcut(variant: str) -> None:
    """Smooth variants: energy and forces continuous when a neighbour crosses rcut (the non-smooth concat form,
    the control, jumps)."""
    e, f = crossing_energies(variant, 1e-7)
    assert abs(e[0] - e[1]) < 1e-12 * max(1.0, abs(e[0]))
    assert np.max(np.abs(f[0] - f[1])) < 1e-9
    e_ctrl, _ = crossing_energies("concat", 1e-7)
    assert abs(e_ctrl[0] - e_ctrl[1]) > 1e-6


@pytest.mark.parametrize("variant", ["concat", "v2"])
def test_trains_in_a_graph(variant: str) -> None:
    """Under ``tf.function`` (as training runs it) the model gives the eager numbers; the head's trainable set has
    every descriptor variable, and a force loss reaches each (type embedding, nets, attention, LayerNorms)."""
    import tensorflow as tf

    rng = np.random.default_rng(2)
    mt = make_model(variant, "ener")
    coord, atype, box = random_frame(rng, n=12)
    nl = {k: (tf.constant(i), tf.constant(s)) for k, (i, s) in mtbench_nlists(mt, coord, atype, box).items()}
    coord, box, atype = tf.constant(coord), tf.constant(box), tf.constant(atype, tf.int32)
    eager = mt.predict("t", coord, box, atype, nl)
    graph = tf.function(lambda c, b: mt.predict("t", c, b, atype, nl))(coord, box)
    for key in ("energy", "force", "virial"):
        np.testing.assert_allclose(graph[key], eager[key], rtol=1e-12, atol=1e-12)
    variables = mt.trainable_variables_of("t")
    d = mt.descriptor
    expected = (len(d.type_embedding.trainable_variables) + len(d.embeddings.trainable_variables)
                + (len(d.embeddings_strip.trainable_variables) if d.embeddings_strip is not None else 0)
                + 6 * d.attn_layer + len(mt.heads["t"].trainable_variables))
    assert len(variables) == expected
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(mt.predict("t", coord, box, atype, nl)["force"] ** 2)
    grads = tape.gradient(loss, d.trainable_variables)  # forces do not see the fitting's output bias, only these
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


@pytest.mark.parametrize("nframes", [1, 2])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_neighbour_count_buckets_equal_one_window(variant: str, nframes: int) -> None:
    """Attention per group of atoms with similar neighbour counts (the default) gives one shared window's energy,
    forces, virial and force-loss weight gradient to 1e-12: each atom's rows never meet another atom's."""
    import tensorflow as tf

    from mtbench.model.descriptor.se_atten import ATTENTION_BUCKETS

    rng = np.random.default_rng(11)
    mt = make_model(variant, "ener")
    frames = [random_frame(rng, n=40, periodic=False, min_dist=0.8) for _ in range(nframes)]
    coord, atype = np.concatenate([f[0] for f in frames]), np.concatenate([f[1] for f in frames])
    nl = mtbench_nlists(mt, coord, atype, None)
    idx = next(iter(nl.values()))[0]
    counts = (idx >= 0).sum(-1).ravel()
    assert counts.size >= 2 * ATTENTION_BUCKETS and counts.max() - counts.min() >= 10  # the groups' windows differ
    nl = {k: (tf.constant(i), tf.constant(s)) for k, (i, s) in nl.items()}
    coord_t, box_t, atype_t = tf.constant(coord), tf.constant(np.zeros((nframes, 3, 3))), tf.constant(atype, tf.int32)
    d = mt.descriptor
    results = []
    for buckets in (True, False):
        d.bucket_atoms = buckets
        with tf.GradientTape() as tape:
            out = mt.predict("t", coord_t, box_t, atype_t, nl)
            loss = tf.reduce_sum(out["force"] ** 2)
        grads = tape.gradient(loss, d.trainable_variables)
        results.append(({k: out[k].numpy() for k in ("energy", "force", "virial")}, [g.numpy() for g in grads]))
    d.bucket_atoms = True
    (out_b, grads_b), (out_w, grads_w) = results
    for key in out_w:
        np.testing.assert_allclose(out_b[key], out_w[key], rtol=1e-12, atol=1e-12 * np.max(np.abs(out_w[key])))
    for gb, gw in zip(grads_b, grads_w):
        np.testing.assert_allclose(gb, gw, rtol=1e-12, atol=1e-12 * max(np.max(np.abs(gw)), 1e-300))
