"""Frozen SavedModels: the in-graph neighbour list, and freeze -> load -> the same predictions (1e-12)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from mtbench.data.neighbor import NeighborSpec, build_neighbor_list
from mtbench.export.load import load_model
from mtbench.export.savedmodel import graph_neighbor_list, save_savedmodel
from tests.export._models import FITTINGS, assert_close, frames, nlists, predict, tiny_model

RTOL = 1e-12


@pytest.mark.parametrize("periodic", [True, False])
@pytest.mark.parametrize("mixed", [True, False])
def test_graph_neighbor_list_is_the_data_layers(periodic: bool, mixed: bool) -> None:
    """Slot for slot, including small cells (several images), unwrapped coordinates and sel overflow."""
    rng = np.random.default_rng(11 + 2 * periodic + mixed)
    for length in (2.7, 6.0):
        nf, n = 2, 14
        box = np.tile(np.eye(3) * length, (nf, 1, 1)) + rng.normal(0, 0.3, (nf, 3, 3))
        coord = rng.uniform(-0.5, 1.5, (nf, n, 3)) @ box
        atype = rng.integers(0, 2, (nf, n)).astype(np.int32)
        spec = NeighborSpec(3.2, (9,) if mixed else (3, 5), mixed)
        idx, shift = graph_neighbor_list(coord, box if periodic else np.zeros_like(box), atype, spec, 2)
        for f in range(nf):
            want_idx, want_shift, _ = build_neighbor_list(coord[f], box[f] if periodic else None, atype[f], spec, 2)
            np.testing.assert_array_equal(idx[f].numpy(), want_idx)
            np.testing.assert_array_equal(shift[f].numpy(), want_shift.astype(np.int32))
        assert int(tf.reduce_sum(tf.cast(idx >= 0, tf.int32))) > 0


def _call(fn, f: dict, head_meta: dict, nl: dict | None = None) -> dict[str, np.ndarray]:
    kwargs = {"coord": tf.constant(f["coord"]), "box": tf.constant(f["box"]), "atype": tf.constant(f["atype"])}
    if head_meta["numb_fparam"]:
        kwargs["fparam"] = tf.constant(f["fparam"])
    if head_meta["numb_aparam"]:
        kwargs["aparam"] = tf.constant(f["aparam"])
    for k, (idx, shift) in enumerate((nl or {}).values()):
        kwargs[f"idx_{k}"] = tf.constant(idx, tf.int32)
        kwargs[f"shift_{k}"] = tf.constant(shift, tf.int32)
    return {k: v.numpy() for k, v in fn(**kwargs).items()}


@pytest.mark.slow
@pytest.mark.parametrize("descriptor", ["se_e2_a", "se_atten"])
def test_united_savedmodel_round_trip(tmp_path: Path, descriptor: str) -> None:
    """Every head kind: mtbench reloads exact weights, and every signature gives the in-memory predictions."""
    model = tiny_model(descriptor)
    out = save_savedmodel(tmp_path / "united", model, spec={"model": {"type_map": ["O", "H"]}}, meta={"step": 7})
    reloaded = load_model(out)
    assert reloaded.source == "savedmodel" and reloaded.meta["step"] == 7
    assert list(reloaded.model.heads) == list(FITTINGS)
    loaded = tf.saved_model.load(str(out))
    meta = json.loads(loaded.signatures["metadata"]()["json"].numpy())
    assert meta["type_map"] == ["O", "H"] and list(meta["heads"]) == list(FITTINGS)
    for periodic in (True, False):
        f = frames(seed=3, periodic=periodic)
        nl = nlists(model, f)
        for task in model.heads:
            want = predict(model, task, f)
            assert set(want) == set(meta["heads"][task]["outputs"])
            for key, value in predict(reloaded.model, task, f).items():
                assert_close(value, want[key], RTOL)
            got = _call(loaded.signatures[task], f, meta["heads"][task])
            got_nl = _call(loaded.signatures[task + "_nlist"], f, meta["heads"][task], nl)
            for key in want:
                assert_close(got[key], want[key], RTOL)
                assert_close(got_nl[key], want[key], RTOL)


@pytest.mark.slow
@pytest.mark.parametrize("descriptor", ["se_e2_a", "se_atten"])
def test_united_savedmodel_without_mtbench(tmp_path: Path, descriptor: str) -> None:
    """Plain ``tf.saved_model.load`` in a process where ``import mtbench`` fails evaluates every head.

    Both descriptors use mtbench's compiled batched product in training; saved graphs must not."""
    model = tiny_model(descriptor)
    out = save_savedmodel(tmp_path / "united", model)
    f = frames(seed=5)
    np.savez(tmp_path / "in.npz", **f)
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules["mtbench"] = None  # any import of mtbench now fails
        import numpy as np
        import tensorflow as tf
        m = tf.saved_model.load({str(out)!r})
        meta = json.loads(m.signatures["metadata"]()["json"].numpy())
        f = np.load({str(tmp_path / "in.npz")!r})
        res = {{}}
        for task, h in meta["heads"].items():
            kw = {{k: tf.constant(f[k]) for k in ("coord", "box", "atype")}}
            kw.update({{k: tf.constant(f[k]) for k in ("fparam", "aparam") if h["numb_" + k]}})
            for key, v in m.signatures[h["signature"]](**kw).items():
                res[task + "/" + key] = v.numpy()
        np.savez({str(tmp_path / "out.npz")!r}, **res)
        assert not any(name.startswith("mtbench.") for name in sys.modules)
    """)
    proc = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.load(tmp_path / "out.npz")
    for task in model.heads:
        for key, value in predict(model, task, f).items():
            assert_close(got[f"{task}/{key}"], value, RTOL)
