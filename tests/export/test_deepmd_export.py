"""One head as a DeePMD-kit ``.dp`` file: DeePMD-kit evaluates it as mtbench does (float64, 1e-10 relative)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mtbench.export.deepmd import write_dp
from mtbench.export.load import load_model
from mtbench.model.serialization import load_model_file
from tests.export._models import SHARED_FITTINGS, assert_close, frames, predict, tiny_model

pytest.importorskip("deepmd.dpmodel", reason="deepmd-kit (the oracle) is a test extra")
pytestmark = pytest.mark.oracle

RTOL = 1e-10


def deepmd_eval(path: Path, kind: str, f: dict) -> dict[str, np.ndarray]:
    """DeePMD-kit's own evaluation (NumPy backend for .dp) of frames ``f``."""
    from deepmd.infer.deep_dipole import DeepDipole
    from deepmd.infer.deep_polar import DeepPolar
    from deepmd.infer.deep_pot import DeepPot

    nf, n = f["atype"].shape
    periodic = bool(np.any(f["box"] != 0))
    args = (f["coord"].reshape(nf, -1), f["box"].reshape(nf, 9) if periodic else None, f["atype"][0])
    if kind == "ener":
        dp = DeepPot(str(path))
        kw = {}
        if dp.get_dim_fparam():
            kw["fparam"] = f["fparam"]
        if dp.get_dim_aparam():
            kw["aparam"] = f["aparam"].reshape(nf, -1)
        e, _, _, ae, _ = dp.eval(*args, atomic=True, **kw)
        return {"energy": e.reshape(nf), "atom_energy": ae.reshape(nf, n)}
    dt = (DeepDipole if kind == "dipole" else DeepPolar)(str(path))
    width = 3 if kind == "dipole" else 9
    return {"global": dt.eval(*args, atomic=False).reshape(nf, width),
            "atomic": dt.eval(*args, atomic=True).reshape(nf, n, width)}


@pytest.mark.parametrize("periodic", [True, False])
def test_deepmd_kit_evaluates_every_head_kind_as_mtbench(tmp_path: Path, periodic: bool) -> None:
    model = tiny_model("se_e2_a")
    f = frames(seed=2, periodic=periodic)
    for task, head in model.heads.items():
        path = write_dp(tmp_path / f"{task}.dp", model, task, spec={"model": {"descriptor": {"seed": 1}}})
        want = predict(model, task, f)
        got = deepmd_eval(path, head.kind, f)
        for key, value in got.items():
            assert_close(value, want[key], RTOL)
        back = load_model(path)  # and mtbench reads its own .dp back exactly
        assert back.source == "deepmd"
        assert list(back.model.heads) == [task]  # named as the file records it (mtbench_head)
        for key, value in predict(back.model, task, f).items():
            assert_close(value, want[key], 1e-12)


def test_dp_file_has_deepmd_kits_keys(tmp_path: Path) -> None:
    model = tiny_model("se_e2_a")
    data = load_model_file(write_dp(tmp_path / "d.dp", model, "dipole"))
    assert {"model", "model_def_script", "backend", "software", "version", "time"} <= set(data)
    script = data["model_def_script"]
    assert script["type_map"] == ["O", "H"]
    assert script["descriptor"]["type"] == "se_e2_a" and script["descriptor"]["sel"] == [8, 16]
    assert script["fitting_net"]["type"] == "dipole" and "sel_type" not in script["fitting_net"]
    assert script["atom_exclude_types"] == [1]  # how DeePMD-kit v3 states a tensor head's sel_type
    assert data["model"]["atom_exclude_types"] == [1]
    from deepmd.dpmodel.model.model import get_model

    assert get_model(script).get_sel_type() == [0]  # the config builds the same kind of model in DeePMD-kit


def test_shared_layers_are_one_variable_and_export_as_effective_weights(tmp_path: Path) -> None:
    model = tiny_model("se_e2_a", SHARED_FITTINGS)
    a, b = model.heads["tip3p"].fitting, model.heads["tip4p"].fitting
    for t in range(model.ntypes):
        la, lb = a.nets.get(t).layers, b.nets.get(t).layers
        assert la[0] is lb[0] and la[2] is lb[2]
        assert la[0].w is lb[0].w  # one variable object, not two equal ones
        assert la[1] is not lb[1] and la[3] is not lb[3]
    reloaded = load_model(_saved_united(tmp_path, model)).model  # identity survives freezing
    ra, rb = reloaded.heads["tip3p"].fitting, reloaded.heads["tip4p"].fitting
    assert ra.nets.get(0).layers[0].w is rb.nets.get(0).layers[0].w
    f = frames(seed=4)
    for task in model.heads:
        path = write_dp(tmp_path / f"{task}.dp", model, task)
        assert load_model_file(path)["model"]["fitting"]["layer_name"] is None
        want = predict(model, task, f)
        for key, value in deepmd_eval(path, "ener", f).items():
            assert_close(value, want[key], RTOL)


def _saved_united(tmp_path: Path, model) -> Path:
    from mtbench.export.savedmodel import save_savedmodel

    return save_savedmodel(tmp_path / "united", model)


CONVERT_AND_EVAL = """
import sys, numpy as np
from deepmd.infer.deep_pot import DeepPot
from deepmd.main import main as dp_cli  # the `dp` command, in this process (one TensorFlow start for all files)
f = np.load(sys.argv[1])
out = {}
for dp_file in sys.argv[2:]:
    pb = dp_file[:-3] + ".pb"
    dp_cli(["convert-backend", dp_file, pb])
    nf = f["coord"].shape[0]
    kw = {}
    dp = DeepPot(pb)
    if dp.get_dim_fparam():
        kw["fparam"] = f["fparam"]
    if dp.get_dim_aparam():
        kw["aparam"] = f["aparam"].reshape(nf, -1)
    e, force, virial = dp.eval(f["coord"].reshape(nf, -1), f["box"].reshape(nf, 9), f["atype"][0], **kw)
    name = dp_file.rsplit("/", 1)[-1][:-3]
    out[name + "/energy"], out[name + "/force"], out[name + "/virial"] = e, force, virial
np.savez(sys.argv[1][:-4] + "_out.npz", **out)
"""


@pytest.mark.slow
def test_forces_and_virials_through_deepmd_kits_tensorflow_backend(tmp_path: Path) -> None:
    """``dp convert-backend x.dp x.pb`` then DeePMD-kit's TF backend: forces and virials equal mtbench's."""
    if importlib.util.find_spec("deepmd.tf") is None:  # never import it here: it switches TF to graph mode
        pytest.skip("DeePMD-kit's TensorFlow backend is not installed")
    plain = tiny_model("se_e2_a")
    shared = tiny_model("se_e2_a", SHARED_FITTINGS, seed=1)
    f = frames(seed=6)
    np.savez(tmp_path / "frames.npz", **f)
    files = {"ener": (plain, write_dp(tmp_path / "ener.dp", plain, "ener")),
             "ener_fp": (plain, write_dp(tmp_path / "ener_fp.dp", plain, "ener_fp")),
             "tip3p": (shared, write_dp(tmp_path / "tip3p.dp", shared, "tip3p")),
             "tip4p": (shared, write_dp(tmp_path / "tip4p.dp", shared, "tip4p"))}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(CONVERT_AND_EVAL), str(tmp_path / "frames.npz"),
                           *[str(p) for _, p in files.values()]], check=False, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.load(tmp_path / "frames_out.npz")
    nf, n = f["atype"].shape
    for task, (model, _) in files.items():
        want = predict(model, task, f)
        assert_close(got[f"{task}/energy"].reshape(nf), want["energy"], RTOL)
        assert_close(got[f"{task}/force"].reshape(nf, n, 3), want["force"], RTOL)
        assert_close(got[f"{task}/virial"].reshape(nf, 9), want["virial"], RTOL)


def test_dp_convert_backend_reads_a_dp_with_its_head_name(tmp_path: Path) -> None:
    """The ``mtbench_head`` key is ignored by DeePMD-kit: ``dp convert-backend`` still converts the file."""
    pytest.importorskip("deepmd.dpmodel", reason="deepmd-kit (the oracle) is a test extra")
    from mtbench.export.deepmd import HEAD_KEY
    from mtbench.model.serialization import load_model_file

    model = tiny_model("se_e2_a")
    task = next(t for t, h in model.heads.items() if h.kind == "ener")
    path = write_dp(tmp_path / "renamed.dp", model, task)
    assert load_model_file(path)[HEAD_KEY] == task
    out = tmp_path / "copy.yaml"
    proc = subprocess.run([sys.executable, "-m", "deepmd", "convert-backend", str(path), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.stat().st_size > 0
    assert list(load_model(path).model.heads) == [task]
    assert list(load_model(path, deepmd_head="mine").model.heads) == ["mine"]
