"""System paths: builtin: names, relative paths against the input file's folder."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from mtbench.errors import SpecError
from mtbench.spec.paths import BUILTIN_SYSTEMS, check_systems, expand_systems, resolve_system_path


@pytest.fixture()
def fake_synthetic(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Stand-in for mtbench.data.synthetic that records what was generated."""
    calls: list[str] = []
    module = types.ModuleType("mtbench.data.synthetic")

    def builtin_path(relpath: str) -> str:
        calls.append(relpath)
        return f"/cache/{relpath}"

    module.builtin_path = builtin_path  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mtbench.data.synthetic", module)
    return calls


def test_builtin_resolves_through_synthetic(fake_synthetic: list[str]):
    assert resolve_system_path("builtin:water_dipole/train", None) == "/cache/water_dipole/train"
    assert fake_synthetic == ["water_dipole/train"]


def test_checking_builtin_names_never_generates(fake_synthetic: list[str]):
    check_systems([f"builtin:{name}" for name in BUILTIN_SYSTEMS], None, "training.training_data.systems")
    check_systems("builtin:water_tip4p/val", None, "k")
    assert fake_synthetic == []
    with pytest.raises(SpecError, match=r"^k\[1\]: unknown built-in data 'builtin:water/train'; known: builtin:"):
        check_systems(["builtin:water_tip3p/train", "builtin:water/train"], None, "k")


def test_unknown_builtin_is_rejected_before_generation(fake_synthetic: list[str]):
    with pytest.raises(SpecError, match="unknown built-in data"):
        resolve_system_path("builtin:nope/train", None)
    assert fake_synthetic == []


def test_relative_paths_resolve_against_base_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert resolve_system_path("data/sys", tmp_path) == str((tmp_path / "data" / "sys").resolve())
    assert resolve_system_path("/abs/sys", tmp_path) == "/abs/sys"
    monkeypatch.chdir(tmp_path)
    assert resolve_system_path("sys", None) == str((tmp_path / "sys").resolve())
    assert resolve_system_path("file.h5#/group/a", tmp_path) == str((tmp_path / "file.h5").resolve()) + "#/group/a"


def test_expand_string_root_finds_systems_sorted(tmp_path: Path):
    for name in ("b/sys1", "a/sys0", "a/sys0/not_nested_twice"):
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
    (tmp_path / "b/sys1/type.raw").write_text("0\n")
    (tmp_path / "a/sys0/type.raw").write_text("0\n")
    root = str(tmp_path)
    assert expand_systems(".", tmp_path) == [str(tmp_path / "a/sys0"), str(tmp_path / "b/sys1")]
    assert expand_systems("a/sys0", tmp_path) == [str(tmp_path / "a/sys0")]
    assert expand_systems(["b/sys1", "a/sys0"], Path(root)) == [str(tmp_path / "b/sys1"), str(tmp_path / "a/sys0")]


def test_hdf5_file_is_a_system(tmp_path: Path):
    (tmp_path / "data.h5").write_bytes(b"")
    check_systems(["data.h5#/water"], tmp_path, "k")
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(SpecError, match=r"k\[0\]: 'notes.txt' is a file"):
        check_systems(["notes.txt"], tmp_path, "k")
