"""System paths: builtin: names, relative paths against the input file's folder."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from mtbench.errors import SpecError
from mtbench.spec.paths import BUILTIN_SYSTEMS, check_systems, resolve_system_path


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


def test_folders_and_files_accepted_like_the_data_layer(tmp_path: Path):
    (tmp_path / "root" / "a" / "sys0").mkdir(parents=True)
    (tmp_path / "root" / "a" / "sys0" / "type.raw").write_text("0\n")
    (tmp_path / "frames.extxyz").write_text("")
    check_systems(["root", "root/a/sys0", "frames.extxyz"], tmp_path, "k")  # root, system, dpdata file
    check_systems("root", tmp_path, "k")
    check_systems(["frames.extxyz#ignored"], tmp_path, "k")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError, match=r"^k\[1\]: no deepmd/npy system \(folder with type.raw\) in or below"):
        check_systems(["root", "empty"], tmp_path, "k")
    with pytest.raises(SpecError, match=r"^k: data system 'nope' not found"):
        check_systems("nope", tmp_path, "k")
    with pytest.raises(SpecError, match=r"^k\[0\]: expected a path string"):
        check_systems([3], tmp_path, "k")
