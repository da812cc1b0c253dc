"""load_spec / write_spec: JSON and YAML, clear errors with line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtbench.errors import DataError
from mtbench.spec.io import load_spec, write_spec


def test_json_round_trip_and_base_dir(tmp_path: Path):
    spec = {"model": {"type_map": ["O", "H"]}, "training": {"numb_steps": 3}}
    path = write_spec(spec, tmp_path / "run" / "input.json")
    loaded, base = load_spec(path)
    assert loaded == spec
    assert base == (tmp_path / "run").resolve()
    assert path.read_text().startswith('{\n    "model": {\n        "type_map": ["O", "H"]\n')


def test_yaml_round_trip(tmp_path: Path):
    spec = {"model": {"type_map": ["O", "H"], "descriptor": {"rcut": 4.5, "sel": [20, 40]}}, "x": None}
    loaded, _ = load_spec(write_spec(spec, tmp_path / "input.yaml"))
    assert loaded == spec


def test_missing_file(tmp_path: Path):
    with pytest.raises(DataError, match=r"input\.json: spec file not found"):
        load_spec(tmp_path / "input.json")


def test_bad_json_names_line_and_column(tmp_path: Path):
    path = tmp_path / "input.json"
    path.write_text('{\n  "model": {\n    "type_map": ["O", "H"],\n  }\n}\n')
    with pytest.raises(DataError) as info:
        load_spec(path)
    assert "invalid JSON at line 4, column 3" in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_yaml_names_line_and_column(tmp_path: Path):
    path = tmp_path / "input.yaml"
    path.write_text("model:\n  type_map: [O, H\ntraining: {}\n")
    with pytest.raises(DataError, match=r"invalid YAML at line \d+, column \d+"):
        load_spec(path)


def test_top_level_must_be_a_mapping(tmp_path: Path):
    path = tmp_path / "input.json"
    path.write_text("[1, 2]")
    with pytest.raises(DataError, match="expected a mapping"):
        load_spec(path)


def test_numpy_scalars_are_written_as_numbers(tmp_path: Path):
    np = pytest.importorskip("numpy")
    loaded, _ = load_spec(write_spec({"a": np.float64(0.5), "b": (np.int64(3),)}, tmp_path / "s.json"))
    assert loaded == {"a": 0.5, "b": [3]}


def test_written_json_is_readable_and_exact(tmp_path: Path):
    spec = {"a": {"b": [[0, 1], [1, 1]], "c": [{"x": 1.5e-8}, {}], "d": [], "e": {}, "f": "[x]"}}
    path = write_spec(spec, tmp_path / "s.json")
    assert load_spec(path)[0] == spec
    assert '"b": [\n            [0, 1],\n            [1, 1]\n        ]' in path.read_text()
