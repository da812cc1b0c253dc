"""``python -m mtbench.test -d`` against DeePMD-kit's real ``dp test -d`` on the same ``.dp`` models and data.

The models are built with DeePMD-kit's NumPy reference (random weights and statistics), saved as ``.dp`` and read
by both programs. DeePMD's NumPy backend has no forces, so its energy test runs on the same model converted to its
TensorFlow backend (``dp convert-backend``). Headers must be identical, reference columns equal, predictions equal
to float64 rounding. DeePMD-kit runs in a subprocess (its TensorFlow backend switches TensorFlow to graph mode).
"""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.oracle, pytest.mark.slow]

pytest.importorskip("deepmd.dpmodel", reason="deepmd-kit (the oracle) is a test extra")

DESCRIPTOR = {"type": "se_e2_a", "sel": [12, 24], "rcut": 3.5, "rcut_smth": 0.5, "neuron": [4, 8],
              "axis_neuron": 4, "seed": 1, "precision": "float64"}
FITTINGS = {"ener": {"type": "ener", "neuron": [8, 8], "seed": 2, "precision": "float64"},
            "dipole": {"type": "dipole", "neuron": [8, 8], "seed": 3, "precision": "float64"},
            "polar": {"type": "polar", "neuron": [8, 8], "seed": 4, "precision": "float64", "fit_diag": False}}

DP_SCRIPT = textwrap.dedent("""
    import sys
    from deepmd.main import main
    for args in sys.argv[1:]:
        main(args.split("|"))
""")


def build_dp_models(folder: Path) -> dict[str, Path]:
    """ener/dipole/polar ``.dp`` files; the tensor models predict for O only (DeePMD v3: atom_exclude_types)."""
    from deepmd.dpmodel.model.model import get_model
    from deepmd.dpmodel.utils.serialization import save_dp_model

    from tests.oracle.dpmodel_util import randomize_stats

    rng = np.random.default_rng(5)
    out = {}
    for kind, fitting in FITTINGS.items():
        cfg = {"type_map": ["O", "H"], "descriptor": DESCRIPTOR, "fitting_net": fitting}
        data = randomize_stats(get_model(copy.deepcopy(cfg)).serialize(), rng)
        if kind != "ener":
            data["atom_exclude_types"] = [1]
            data["fitting"]["exclude_types"] = [1]
        out[kind] = folder / f"{kind}.dp"
        save_dp_model(str(out[kind]), {"model": data, "model_def_script": cfg})
    return out


def compare(dp_file: Path, mt_file: Path) -> None:
    dp_text, mt_text = dp_file.read_text().splitlines(), mt_file.read_text().splitlines()
    assert [ln for ln in mt_text if ln.startswith("#")] == [ln for ln in dp_text if ln.startswith("#")], mt_file.name
    dp, mt = np.loadtxt(dp_file, ndmin=2), np.loadtxt(mt_file, ndmin=2)
    assert dp.shape == mt.shape, mt_file.name
    half = dp.shape[1] // 2
    np.testing.assert_array_equal(mt[:, :half], dp[:, :half], err_msg=mt_file.name)
    np.testing.assert_allclose(mt[:, half:], dp[:, half:], rtol=1e-10, atol=1e-12, err_msg=mt_file.name)


def test_detail_files_equal_dp_test(tiny_data: Path, tmp_path: Path) -> None:
    from mtbench.cli.test import main

    models = build_dp_models(tmp_path)
    ener_systems = [str(tiny_data / "water_tip3p" / "val" / "sys_000"),
                    str(tiny_data / "water_tip4p" / "val" / "sys_000")]
    (tmp_path / "ener_systems.txt").write_text("\n".join(ener_systems) + "\n")
    dip, pol = tiny_data / "water_dipole" / "val", tiny_data / "water_polar" / "val"
    dp = str(tmp_path / "dp")
    runs = [  # (dp test arguments, mtbench.test arguments, detail files)
        (["-m", str(tmp_path / "ener.pb"), "-f", str(tmp_path / "ener_systems.txt")],
         ["-m", str(models["ener"]), "-s", *ener_systems],
         [".e.out", ".e_peratom.out", ".f.out", ".v.out", ".v_peratom.out", ".s.out"]),
        (["-m", str(models["dipole"]), "-s", str(dip / "global_system")],
         ["-m", str(models["dipole"]), "-s", str(dip / "global_system")], [".out"]),
        (["-m", str(models["dipole"]), "-s", str(dip / "atomic_system"), "-a"],
         ["-m", str(models["dipole"]), "-s", str(dip / "atomic_system"), "-a"], [".out"]),
        (["-m", str(models["polar"]), "-s", str(pol / "global_system")],
         ["-m", str(models["polar"]), "-s", str(pol / "global_system")], [".out"]),
        (["-m", str(models["polar"]), "-s", str(pol / "atomic_system"), "-a"],
         ["-m", str(models["polar"]), "-s", str(pol / "atomic_system"), "-a"], [".out"]),
    ]
    dp_calls = [f"convert-backend|{models['ener']}|{tmp_path / 'ener.pb'}"]
    dp_calls += ["|".join(["test", *dp_args, "-d", f"{dp}{k}"]) for k, (dp_args, _, _) in enumerate(runs)]
    proc = subprocess.run([sys.executable, "-c", DP_SCRIPT, *dp_calls], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for k, (_, mt_args, suffixes) in enumerate(runs):
        main([*mt_args, "-d", str(tmp_path / f"mt{k}")])
        for suffix in suffixes:
            compare(Path(f"{dp}{k}{suffix}"), tmp_path / f"mt{k}{suffix}")
