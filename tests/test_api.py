"""``mtbench.api``: the commands as functions a notebook calls; results as objects, nothing printed, and the
same numbers as the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtbench import api
from mtbench.errors import MtbenchError
from mtbench.rundir import Kind, RunDir, locate
from tests.conftest import tiny_spec_dict


@pytest.fixture(scope="module")
def trained(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> api.TrainResult:
    spec = tiny_spec_dict(tiny_data, steps=4)
    return api.train(spec, run_dir=tmp_path_factory.mktemp("api") / "run", tracking="none")


def test_train_returns_the_summary_it_wrote(trained: api.TrainResult) -> None:
    on_disk = RunDir(trained.run_dir).read_summary()
    assert trained.summary["steps"] == on_disk.steps == 4
    assert trained.objective == pytest.approx(on_disk.objective, rel=0, abs=0)
    assert set(trained.summary["final"]) == {"water_ener", "water_dipole"}


def test_train_from_a_path_and_restart(trained: api.TrainResult, tmp_path: Path, capsys) -> None:
    spec = json.loads(RunDir(trained.run_dir).input_json.read_text())
    spec["training"]["numb_steps"] = 6
    inp = tmp_path / "input.json"
    inp.write_text(json.dumps(spec))
    capsys.readouterr()
    again = api.train(inp, run_dir=tmp_path / "run", restart=trained.run_dir, tracking="none")
    assert capsys.readouterr().out == ""  # the api prints nothing
    assert again.summary["steps"] == 6 and again.run_dir == (tmp_path / "run").resolve()


def test_freeze_test_neighbor_stat(trained: api.TrainResult, tiny_data: Path, tmp_path: Path, capsys) -> None:
    from mtbench.cli.test import main as test_main

    capsys.readouterr()
    frozen = api.freeze(trained.run_dir, tmp_path / "frozen", log_to_mlflow=False)
    assert locate(tmp_path / "frozen").kind is Kind.FROZEN_HEADS and frozen.manifest is not None
    system = str(tiny_data / "water_tip3p" / "val")
    done = api.test(tmp_path / "frozen", system=system, head="water_ener", json=str(tmp_path / "t.json"),
                    no_plots=True)
    assert capsys.readouterr().out == ""
    assert json.loads((tmp_path / "t.json").read_text())["heads"] == done.report["heads"]
    assert (tmp_path / "t_table.txt").read_text().startswith("water_ener (ener)")
    cli = test_main(["-m", str(trained.run_dir), "-s", system, "--head", "water_ener", "--no-plots"])
    assert "water_ener (ener)" in capsys.readouterr().out  # the command prints what the api returned
    assert done.report["heads"]["water_ener"]["metrics"] == pytest.approx(cli["heads"]["water_ener"]["metrics"],
                                                                          rel=1e-10)
    stat = api.neighbor_stat(str(tiny_data / "water_tip3p" / "train"), 3.0, json=tmp_path / "ns.json")
    assert json.loads((tmp_path / "ns.json").read_text())["sel"] == stat.sel
    with pytest.raises(MtbenchError, match="head: model has no head 'nope'"):
        api.test(trained.run_dir, head="nope")
