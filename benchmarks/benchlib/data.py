"""Benchmark data: which systems go into the input files, and replicated boxes for the scaling runs.

The water data of ``../shared/data/water`` (192 atoms, data_0..2 training, data_3 validation) is used when present;
otherwise mtbench's built-in water data (generated once into its cache). The dipole task always uses mtbench's
built-in ``water_dipole`` data, which DeePMD-kit reads as plain deepmd/npy.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchlib.tools import REPO_ROOT

SHARED_WATER = REPO_ROOT.parent / "shared" / "data" / "water"


@dataclass
class BenchData:
    """Absolute system folders for each placeholder of the input templates (``@WATER_TRAIN`` ...)."""

    systems: dict[str, list[str]] = field(default_factory=dict)
    source: str = ""
    natoms: int = 0

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "natoms_per_frame": self.natoms, "systems": self.systems}


def system_dirs(root: str | Path) -> list[str]:
    """deepmd/npy system folders at or under ``root`` (folders holding a ``type.raw``), sorted."""
    root = Path(root)
    if (root / "type.raw").is_file():
        return [str(root.resolve())]
    found = sorted(str(p.parent.resolve()) for p in root.rglob("type.raw"))
    if not found:
        raise FileNotFoundError(f"{root}: no deepmd/npy system (no type.raw) at or under this folder")
    return found


def natoms_of(system: str | Path) -> int:
    return len(Path(system, "type.raw").read_text().split())


def _builtin(relpath: str) -> str:
    from mtbench.data.synthetic import builtin_path

    return builtin_path(relpath)


def resolve_data(water_dir: str | Path | None = None, *, need_dipole: bool = True, log=print) -> BenchData:
    """Find the water (and dipole) systems; ``water_dir`` overrides the shared folder."""
    data = BenchData()
    water = Path(water_dir) if water_dir else SHARED_WATER
    if water_dir and not water.is_dir():
        raise FileNotFoundError(f"--water-data {water}: no such folder")
    if water.is_dir() and all((water / f"data_{i}").is_dir() for i in range(4)):
        data.systems["WATER_TRAIN"] = [str((water / f"data_{i}").resolve()) for i in range(3)]
        data.systems["WATER_VAL"] = [str((water / "data_3").resolve())]
        data.source = f"{water.resolve()} (data_0..2 training, data_3 validation)"
    else:
        log(f"[bench] {water} not found: using mtbench's built-in water_tip3p data")
        data.systems["WATER_TRAIN"] = system_dirs(_builtin("water_tip3p/train"))
        data.systems["WATER_VAL"] = system_dirs(_builtin("water_tip3p/val"))
        data.source = "mtbench built-in water_tip3p/train, water_tip3p/val"
    if need_dipole:
        data.systems["DIPOLE_TRAIN"] = system_dirs(_builtin("water_dipole/train"))
        data.systems["DIPOLE_VAL"] = system_dirs(_builtin("water_dipole/val"))
    data.natoms = natoms_of(data.systems["WATER_TRAIN"][0])
    return data


def fill_input(template: Mapping[str, Any], systems: Mapping[str, list[str]], *, numb_steps: int, disp_freq: int,
               save_freq: int | None = None, batch_size: int | None = None,
               val_batches: int | None = None, precision: str | None = None) -> dict[str, Any]:
    """The template with ``"@NAME"`` system placeholders replaced and the run length set.

    ``batch_size`` overrides every training batch size (scaling runs); ``val_batches`` every ``numb_btch``;
    ``precision`` the descriptor's and every fitting net's ``precision`` (e.g. float32 for both tools).
    """
    def subst(obj: Any) -> Any:
        if isinstance(obj, str) and obj.startswith("@"):
            key = obj[1:]
            if key not in systems:
                raise KeyError(f"input placeholder {obj!r} has no data (known: {', '.join(systems)})")
            return list(systems[key])
        if isinstance(obj, dict):
            return {k: subst(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [subst(v) for v in obj]
        return obj

    spec = subst(copy.deepcopy(dict(template)))
    spec.pop("_comment", None)
    if precision is not None:
        model = spec["model"]
        model["descriptor"]["precision"] = precision
        for fit in [model.get("fitting_net"), *model.get("fitting_net_dict", {}).values()]:
            if fit is not None:
                fit["precision"] = precision
    training = spec["training"]
    training["numb_steps"] = int(numb_steps)
    training["disp_freq"] = int(disp_freq)
    training["save_freq"] = int(save_freq if save_freq is not None else numb_steps)
    blocks = [d for d in training.get("data_dict", {}).values()] or [training]
    for block in blocks:
        if batch_size is not None:
            block["training_data"]["batch_size"] = int(batch_size)
        if val_batches is not None and "validation_data" in block:
            block["validation_data"]["numb_btch"] = int(val_batches)
    return spec


def replicate_system(src: str | Path, dst: str | Path, reps: tuple[int, int, int] = (2, 2, 2),
                     max_frames: int | None = None) -> Path:
    """Write ``src`` (deepmd/npy) replicated ``reps`` times along the cell vectors into ``dst``.

    Energies (and virials) scale with the number of copies, forces are copied: exact labels of the periodic
    supercell, so the replicated data are as learnable as the original.
    """
    src, dst = Path(src), Path(dst)
    sets = sorted(p for p in src.glob("set.*") if p.is_dir())
    if not sets:
        raise FileNotFoundError(f"{src}: no set.* folders")
    arrays: dict[str, list[np.ndarray]] = {}
    for s in sets:
        for f in s.glob("*.npy"):
            arrays.setdefault(f.stem, []).append(np.load(f))
    data = {k: np.concatenate(v)[:max_frames] for k, v in arrays.items()}
    types = np.array(Path(src, "type.raw").read_text().split(), dtype=int)
    natoms, nframes = len(types), len(data["coord"])
    ncopy = int(np.prod(reps))
    cell = data["box"].reshape(nframes, 3, 3)
    coord = data["coord"].reshape(nframes, natoms, 3)
    shifts = [i * cell[:, 0] + j * cell[:, 1] + k * cell[:, 2]
              for i, j, k in itertools.product(*(range(r) for r in reps))]
    out = {
        "coord": np.concatenate([coord + sh[:, None, :] for sh in shifts], axis=1).reshape(nframes, -1),
        "box": (cell * np.asarray(reps, dtype=float)[None, :, None]).reshape(nframes, 9),
    }
    if "energy" in data:
        out["energy"] = data["energy"] * ncopy
    if "force" in data:
        out["force"] = np.tile(data["force"].reshape(nframes, natoms, 3), (1, ncopy, 1)).reshape(nframes, -1)
    if "virial" in data:
        out["virial"] = data["virial"] * ncopy
    (dst / "set.000").mkdir(parents=True, exist_ok=True)
    for key, arr in out.items():
        np.save(dst / "set.000" / f"{key}.npy", arr)
    Path(dst, "type.raw").write_text("\n".join(str(t) for t in np.tile(types, ncopy)) + "\n")
    if Path(src, "type_map.raw").is_file():
        Path(dst, "type_map.raw").write_text(Path(src, "type_map.raw").read_text())
    return dst
