"""``python -m mtbench.neighbor_stat``: the numbers of DeePMD-kit's ``dp neighbor-stat`` and its automatic sel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mtbench.errors import DataError
from mtbench.cli.neighbor_stat import main
from mtbench.evaluation.neighbor_stat import neighbor_stat, wrap_up_4


def test_wrap_up_4_is_deepmds_rounding() -> None:
    # truncates first (4.9 -> 4), then rounds up to a multiple of 4
    assert [wrap_up_4(x) for x in (0, 1, 4, 4.9, 5.5, 18.7, 37.4)] == [0, 4, 4, 4, 8, 20, 40]


@pytest.mark.oracle
@pytest.mark.parametrize("mixed", [False, True])
def test_equals_dp_neighbor_stat(tiny_data: Path, mixed: bool) -> None:
    dp_stat = pytest.importorskip("deepmd.entrypoints.neighbor_stat", reason="deepmd-kit is a test extra")
    root = tiny_data / "water_tip3p"
    for rcut in (2.0, 3.5, 5.0):  # 5.0 Å is beyond half the 6.2 Å box: several periodic images count
        ours = neighbor_stat([str(root)], rcut, ["O", "H"], mixed_types=mixed)
        dmin, dmax = dp_stat.neighbor_stat(system=str(root), rcut=rcut, type_map=["O", "H"], mixed_type=mixed,
                                           backend="numpy")
        assert ours.max_counts == [int(x) for x in np.ravel(dmax)], rcut
        assert ours.min_distance == pytest.approx(dmin, rel=1e-12)
        assert ours.sel == [wrap_up_4(x * 1.1) for x in np.ravel(dmax)]


def test_cli_table_and_json(tiny_data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "stat.json"
    stat = main(["-s", str(tiny_data / "water_tip3p"), "-r", "3.5", "--json", str(out), "-v"])
    printed = capsys.readouterr().out
    assert "neighbours within rcut = 3.5 Å: 2 system(s), 6 frames" in printed
    assert f"sel: {stat.sel}" in printed
    data = json.loads(out.read_text())
    assert data["type_map"] == ["O", "H"]  # from the systems' type_map.raw
    assert data["sel"] == stat.sel and len(data["systems"]) == 2
    assert data["max_counts"] == [max(s["max_counts"][t] for s in data["systems"]) for t in range(2)]
    mixed = main(["-s", str(tiny_data / "water_tip3p"), "-r", "3.5", "--mixed"])
    assert mixed.max_counts[0] <= sum(stat.max_counts) and len(mixed.sel) == 1


def test_errors(tiny_data: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(DataError, match="does not exist"):
        neighbor_stat([str(tmp_path / "none")], 3.0)
    with pytest.raises(SystemExit) as exc:
        main(["-s", str(tiny_data / "water_tip3p"), "-r", "3.0", "-t", "O"])
    assert exc.value.code == 2
    assert "type 'H' is not in the model's type_map ['O']" in capsys.readouterr().err
