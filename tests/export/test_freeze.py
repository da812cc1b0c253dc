"""``python -m mtbench.freeze``: the forms it writes, its manifest, its errors and its MLflow logging."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mtbench.errors import MtbenchError
from mtbench.export.freeze import freeze, run_tracking
from mtbench.export.load import load_model
from mtbench.cli.freeze import main
from tests.export._models import assert_close, predict

RTOL = 1e-12


def val_frames(root: Path) -> dict[str, np.ndarray]:
    sys_dir = root / "water_tip3p" / "val" / "sys_000" / "set.000"
    coord = np.load(sys_dir / "coord.npy")
    nf = len(coord)
    atype = np.loadtxt(root / "water_tip3p" / "val" / "sys_000" / "type.raw", dtype=np.int32)
    return {"coord": coord.reshape(nf, -1, 3), "box": np.load(sys_dir / "box.npy").reshape(nf, 3, 3),
            "atype": np.tile(atype, (nf, 1))}


def test_default_is_one_savedmodel_per_head_with_a_manifest(two_head_run: Path, dft_data: Path,
                                                            tmp_path: Path) -> None:
    result = freeze(two_head_run, tmp_path / "frozen", log_to_mlflow=False)
    manifest = json.loads((tmp_path / "frozen" / "manifest.json").read_text())
    summary = json.loads((two_head_run / "summary.json").read_text())
    assert result.heads == ["water_tip3p", "water_dipole"] == list(manifest["heads"])
    assert manifest["format"] == "savedmodel" and manifest["type_map"] == ["O", "H"] and manifest["step"] == 2
    assert manifest["heads"]["water_tip3p"]["kind"] == "ener"
    assert manifest["heads"]["water_dipole"]["outputs"] == ["atomic", "global"]
    for task in result.heads:  # full-precision final validation metrics of the run
        assert manifest["heads"][task]["validation"] == {k: v for k, v in summary["final"][task]["val"].items()}
        assert manifest["heads"][task]["validation_step"] == 2
    ckpt = load_model(two_head_run).model
    f = val_frames(dft_data)
    for task in result.heads:
        frozen = load_model(tmp_path / "frozen" / manifest["heads"][task]["path"])
        assert list(frozen.model.heads) == [task]
        assert list(frozen.spec["model"]["fitting_net_dict"]) == [task]  # the spec of that head only
        want = predict(ckpt, task, f)
        for key, value in predict(frozen.model, task, f).items():
            assert_close(value, want[key], RTOL)


def test_dp_per_head_and_one_head(two_head_run: Path, dft_data: Path, tmp_path: Path) -> None:
    result = freeze(two_head_run, tmp_path / "dp", fmt="dp", log_to_mlflow=False)
    assert sorted(p.name for p in (tmp_path / "dp").iterdir()) == ["manifest.json", "water_dipole.dp",
                                                                  "water_tip3p.dp"]
    assert json.loads(result.manifest.read_text())["format"] == "dp"
    one = freeze(two_head_run, tmp_path / "ener.dp", head="water_tip3p", log_to_mlflow=False)
    assert one.outputs == [tmp_path / "ener.dp"]
    ckpt = load_model(two_head_run).model
    f = val_frames(dft_data)
    want = predict(ckpt, "water_tip3p", f)
    for path in (tmp_path / "ener.dp", tmp_path / "dp" / "water_tip3p.dp"):
        assert list(load_model(path).model.heads) == ["water_tip3p"]  # the head name the .dp records
        for key, value in predict(load_model(path).model, "water_tip3p", f).items():
            assert_close(value, want[key], RTOL)


@pytest.mark.parametrize(("source", "args", "words"), [
    (None, ["-o", "{tmp}/m.dp"], ["--head", "water_tip3p, water_dipole"]),
    (None, ["--united", "--head", "water_tip3p", "-o", "{tmp}/u"], ["--united holds every head"]),
    (None, ["--united", "-o", "{tmp}/u.dp"], ["one head"]),
    (None, ["--head", "water_ccsdt", "-o", "{tmp}/m.dp"], ["no head 'water_ccsdt'", "water_tip3p, water_dipole"]),
    ("{tmp}/missing", ["-o", "{tmp}/m.dp"], ["missing", "not found"]),
])
def test_cli_errors_are_one_line(two_head_run: Path, tmp_path: Path, capsys, source: str | None, args: list[str],
                                 words: list[str]) -> None:
    source = str(two_head_run) if source is None else source.format(tmp=tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main([source, "--no-mlflow", *[a.format(tmp=tmp_path) for a in args]])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mtbench.freeze: error:") and "\n" not in err
    assert all(w in err for w in words), err


def test_help_has_examples(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "--united" in out and "dp convert-backend" in out and "examples:" in out


def test_refuses_to_write_into_a_folder_with_other_files(two_head_run: Path, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(MtbenchError, match="folder exists and is not empty"):
        freeze(two_head_run, tmp_path / "full", head="water_tip3p", log_to_mlflow=False)
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["x"]


@pytest.mark.slow
def test_frozen_files_are_logged_to_the_runs_mlflow_run(two_head_run: Path, tmp_path: Path, monkeypatch) -> None:
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    outputs = tmp_path / "outputs"
    run_dir = outputs / "runs" / "2026-01-01" / "00-00-00"
    shutil.copytree(two_head_run, run_dir)
    uri = "sqlite:///" + (outputs / "mlflow.db").as_posix()
    client = MlflowClient(uri)
    exp = client.create_experiment("t", artifact_location=(outputs / "mlartifacts").as_uri())
    run_id = client.create_run(exp).info.run_id
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, "run_id": run_id}))
    assert run_tracking(run_dir) == (run_id, uri, "")

    result = freeze(run_dir, tmp_path / "ener.dp", head="water_tip3p")
    assert result.tracking == f"logged to MLflow run {run_id} ({uri}) under frozen/"
    assert [a.path for a in client.list_artifacts(run_id, "frozen")] == ["frozen/ener.dp"]

    (outputs / "mlflow.db").rename(outputs / "moved.db")  # the store is gone: said once, files still written
    again = freeze(run_dir, tmp_path / "again.dp", head="water_tip3p")
    assert again.tracking.startswith("not logged to MLflow") and "does not exist" in again.tracking
    assert (tmp_path / "again.dp").is_file()
