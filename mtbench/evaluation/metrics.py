"""Test metrics of a trained head on labelled data, the way DeePMD-kit's ``dp test`` computes them.

:func:`evaluate` runs one head over data systems and returns the per-frame reference and predicted arrays (atoms in
the order of the files, as ``dp test`` writes them) with DeePMD's error statistics:

* energy heads: ``mae_e``/``rmse_e`` (per frame), ``mae_ea``/``rmse_ea`` (per frame divided by the atom count),
  ``mae_f``/``rmse_f`` (force components), ``mae_v``/``rmse_v``, ``mae_va``/``rmse_va`` and ``mae_s``/``rmse_s``
  (virial, virial per atom and stress ``-virial/volume``; periodic systems with virial labels only), and with
  ``atomic=True`` ``mae_ae``/``rmse_ae`` from ``atom_ener`` labels;
* dipole/polarizability heads: ``mae``/``rmse`` of the global tensor (the sum over atoms; a system that has only
  atomic labels is compared with the sum of those), per system ``rmse_sqrtn``/``rmse_n`` (RMSE over the square
  root of / over the number of selected atoms), and ``mae_atomic``/``rmse_atomic`` over the selected atoms where
  atomic labels exist.

Every error carries its weight (the number of values it was taken over); systems combine by those weights, which is
DeePMD's ``weighted_average`` and the same as evaluating all systems at once. :func:`write_detail_files` writes
``dp test -d`` files, :func:`cross_head` evaluates every head on every task's data of its kind.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtbench.data.requirements import TENSOR_LABELS, LabelRequirement, head_labels, label_requirements
from mtbench.data.system import DeepmdSystem, expand_systems, load_systems
from mtbench.errors import DataError, SpecError
from mtbench.inference.predictor import HeadPredictor, as_model, check_head, head_sel_type

TENSOR_COMPONENTS = {"dipole": ("x", "y", "z"),
                     "polar": ("pxx", "pxy", "pxz", "pyx", "pyy", "pyz", "pzx", "pzy", "pzz")}
PER_SYSTEM_ONLY = ("mae_ae", "rmse_ae", "rmse_sqrtn", "rmse_n")  # as dp test: not in the run-level average
DEFAULT_CHUNK_ATOMS = 20_000  # atoms per model call: bounds memory on big systems
#: neighbour slots (atoms x sel) per model call: what memory scales with. An se_atten model (sel 120, two attention
#: layers) on 80 water frames of 192 atoms in one eager call peaked above 16 GB, 10 frames (230k slots) at 13 GB,
#: 2 frames at 5.5 GB; training itself (one frame, compiled) peaks near 3.2 GB.
DEFAULT_CHUNK_SLOTS = 25_000
#: model calls from which an evaluation traces its predictor once (one shape-polymorphic ``tf.function``) instead of
#: running eagerly. Measured on 2 cores, 192-atom water, CPU s: tracing costs ~7 (se_atten) to ~10 (se_e2_a) once and
#: saves ~1 (se_atten: 2.9 -> 1.9) or ~0.5 (se_e2_a: 0.6 -> 0.1) per call; both slots bounds above give 1 frame a call.
COMPILE_MIN_CALLS = 16

#: (metric suffix, row label, unit) per head kind, in the order tables show them.
QUANTITIES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "ener": (("e", "Energy", "eV"), ("ea", "Energy/atom", "eV"), ("f", "Force", "eV/Å"), ("v", "Virial", "eV"),
             ("va", "Virial/atom", "eV"), ("s", "Stress", "eV/Å³"), ("ae", "Atomic energy", "eV")),
    "dipole": (("", "Dipole", "label unit"), ("atomic", "Dipole (atomic)", "label unit")),
    "polar": (("", "Polarizability", "label unit"), ("atomic", "Polarizability (atomic)", "label unit")),
}


def metric_key(stat: str, suffix: str) -> str:
    """``rmse_f``, ``mae_ea``, ``rmse`` (global tensor, empty suffix), ``rmse_atomic``."""
    return f"{stat}_{suffix}" if suffix else stat


# ------------------------------------------------------------------------------------------------------ data
def head_requirements(model: Any, head: str, *, atomic: bool = False) -> list[LabelRequirement]:
    """Labels a test of ``head`` reads (all optional, except fparam/aparam the head needs)."""
    h = model.heads[head]
    sel_type = None if h.kind == "ener" else head_sel_type(model, head)
    return label_requirements(head_labels(h.kind, sel_type=sel_type, atom_ener=atomic),
                              numb_fparam=int(h.fitting.numb_fparam), numb_aparam=int(h.fitting.numb_aparam))


def system_paths(systems: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                 key: str = "systems") -> list[str]:
    """System folders/files from what a user wrote: ``builtin:`` names resolved, folders searched for systems.

    Other paths keep the spelling given (``dp test`` prints them as given).
    """
    from mtbench.spec.paths import is_builtin, resolve_system_path

    items = [systems] if isinstance(systems, (str, os.PathLike)) else list(systems)
    given = [resolve_system_path(str(s), None) if is_builtin(str(s)) else str(s) for s in items]
    return expand_systems(given, key=key)


class SystemLoader:
    """Loads each system once per set of label requirements (heads of one kind share one load)."""

    def __init__(self, type_map: Sequence[str]) -> None:
        self.type_map = list(type_map)
        self._cache: dict[tuple[str, tuple[LabelRequirement, ...]], list[DeepmdSystem]] = {}

    def load(self, path: str, requirements: Sequence[LabelRequirement]) -> list[DeepmdSystem]:
        key = (path, tuple(requirements))
        if key not in self._cache:
            self._cache[key] = load_systems(path, self.type_map, list(requirements))
        return self._cache[key]


# ------------------------------------------------------------------------------------------------------ results
@dataclass
class SystemEvaluation:
    """One system: reference and predicted arrays (file atom order) and its errors ``{key: (value, weight)}``.

    Arrays: energy heads ``energy`` [nf], ``force`` [nf,N,3], ``virial`` [nf,9] (reference zeros where a label is
    missing, as dp test writes them) and ``atom_energy`` [nf,N]; tensor heads ``<label>`` [nf,ndof] (global) and
    ``atomic_<label>`` [nf,nsel,ndof] over the selected atoms.
    """

    path: str
    natoms: int
    nframes: int
    pbc: bool
    volume: np.ndarray  # [nf] cell volumes (0 without PBC)
    ref: dict[str, np.ndarray]
    pred: dict[str, np.ndarray]
    found: dict[str, bool]
    errors: dict[str, tuple[float, float]]
    nsel: int = 0
    notes: list[str] = field(default_factory=list)

    def metric(self, key: str) -> float:
        return self.errors[key][0] if key in self.errors else math.nan


@dataclass
class HeadEvaluation:
    """A head over a list of systems: DeePMD-weighted metrics and the per-system results."""

    head: str
    kind: str
    systems: list[SystemEvaluation]
    metrics: dict[str, float]
    weights: dict[str, float]
    sel_type: list[int] = field(default_factory=list)

    @property
    def nframes(self) -> int:
        return sum(s.nframes for s in self.systems)

    def parity_data(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Flattened (reference, prediction) per plotted quantity, over the systems that have its labels."""
        out: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}

        def add(name: str, ref: np.ndarray, pred: np.ndarray) -> None:
            out.setdefault(name, []).append((np.ravel(ref), np.ravel(pred)))

        for s in self.systems:
            if self.kind == "ener":
                if s.found.get("energy"):
                    add("energy_per_atom", s.ref["energy"] / s.natoms, s.pred["energy"] / s.natoms)
                if s.found.get("force"):
                    add("force", s.ref["force"], s.pred["force"])
                if s.found.get("virial") and s.pbc:
                    add("virial_per_atom", s.ref["virial"] / s.natoms, s.pred["virial"] / s.natoms)
                if s.found.get("atom_ener"):
                    add("atom_energy", s.ref["atom_energy"], s.pred["atom_energy"])
            else:
                glob, atom = TENSOR_LABELS[self.kind].global_key, TENSOR_LABELS[self.kind].atomic_key
                if s.found.get(glob) or s.found.get(f"{glob}_from_atomic"):
                    add(glob, s.ref[glob], s.pred[glob])
                if s.found.get(atom):
                    add(atom, s.ref[atom], s.pred[atom])
        return {k: (np.concatenate([r for r, _ in v]), np.concatenate([p for _, p in v])) for k, v in out.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"head": self.head, "kind": self.kind, "nframes": self.nframes,
                "metrics": _finite(self.metrics), "weights": dict(self.weights),
                "systems": [{"path": s.path, "natoms": s.natoms, "nframes": s.nframes, "pbc": s.pbc,
                             "labels": sorted(k for k, v in s.found.items() if v),
                             "metrics": _finite({k: v for k, (v, _) in s.errors.items()}),
                             **({"notes": s.notes} if s.notes else {})}
                            for s in self.systems]}


def _finite(d: Mapping[str, float]) -> dict[str, float | None]:
    return {k: (float(v) if math.isfinite(v) else None) for k, v in d.items()}


def merge_errors(errors: Iterable[Mapping[str, tuple[float, float]]]) -> dict[str, tuple[float, float]]:
    """DeePMD's weighted average: MAEs by their weights, RMSEs as the root of the weighted mean square."""
    total: dict[str, float] = {}
    weight: dict[str, float] = {}
    for err in errors:
        for key, (value, w) in err.items():
            if not w:
                continue
            total[key] = total.get(key, 0.0) + (value * w if key.startswith("mae") else value * value * w)
            weight[key] = weight.get(key, 0.0) + w
    return {k: (total[k] / weight[k] if k.startswith("mae") else math.sqrt(total[k] / weight[k]), weight[k])
            for k in total}


def _stat(suffix: str, pred: np.ndarray, ref: np.ndarray, scale: float = 1.0) -> dict[str, tuple[float, float]]:
    """``{mae_<suffix>: (value, weight), rmse_<suffix>: ...}``, weight = number of values (DeePMD's)."""
    diff = np.asarray(pred, np.float64) - np.asarray(ref, np.float64)
    n = float(diff.size)
    if not n:
        return {}
    return {metric_key("mae", suffix): (float(np.mean(np.abs(diff))) * scale, n),
            metric_key("rmse", suffix): (float(np.sqrt(np.mean(diff * diff))) * scale, n)}


# ------------------------------------------------------------------------------------------------------ evaluate
def _to_file_order(arr: np.ndarray, idx_map: np.ndarray) -> np.ndarray:
    """Arrays over sorted atoms (axis 1) back to the order of the files."""
    out = np.empty_like(arr)
    out[:, idx_map] = arr
    return out


def frames_per_call(natoms: int, nspecs: Sequence[Any], chunk_atoms: int = DEFAULT_CHUNK_ATOMS) -> int:
    """Frames of an ``natoms`` system per model call: the atom and the neighbour-slot bounds."""
    slots = max(1, natoms) * max([1, *(sum(spec.sel) for spec in nspecs)])
    return max(1, min(chunk_atoms // max(natoms, 1), DEFAULT_CHUNK_SLOTS // slots))


def planned_calls(systems: Sequence[DeepmdSystem], nframes: int | None, nspecs: Sequence[Any],
                  chunk_atoms: int = DEFAULT_CHUNK_ATOMS) -> int:
    """Model calls an evaluation of ``nframes`` (None: all) frames per system makes."""
    return sum(-(-min(nframes or s.nframes, s.nframes) // frames_per_call(s.natoms, nspecs, chunk_atoms))
               for s in systems)


def _predict_system(predictor: HeadPredictor, system: DeepmdSystem, frames: np.ndarray,
                    chunk_atoms: int) -> dict[str, np.ndarray]:
    step = frames_per_call(system.natoms, predictor.nspecs, chunk_atoms)
    parts: list[dict[str, np.ndarray]] = []
    nbs = {spec: system.neighbor_data(spec) for spec in predictor.nspecs}
    for start in range(0, len(frames), step):
        idx = frames[start:start + step]
        batch = system.frames(idx)
        nlists = {spec: nb.take(idx) for spec, nb in nbs.items()}
        parts.append(predictor(batch["coord"], batch["box"], batch["atype"], nlists,
                               batch.get("fparam"), batch.get("aparam")))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _frame_indices(system: DeepmdSystem, nframes: int | None, rng: np.random.Generator | None) -> np.ndarray:
    idx = np.arange(system.nframes)
    if rng is not None:
        idx = rng.permutation(idx)
    return idx if not nframes else idx[:nframes]


def evaluate_system(predictor: HeadPredictor, system: DeepmdSystem, *, nframes: int | None = None,
                    atomic: bool = False, sel_type: Sequence[int] = (), label: str | None = None,
                    rng: np.random.Generator | None = None,
                    chunk_atoms: int = DEFAULT_CHUNK_ATOMS) -> SystemEvaluation:
    """Predictions and errors of one head on one system loaded with :func:`head_requirements`."""
    frames = _frame_indices(system, nframes, rng)
    if frames.size == 0:
        raise DataError(system.path, "holds no frames to test")
    out = _predict_system(predictor, system, frames, chunk_atoms)
    pbc = not system.nopbc
    volume = np.abs(np.linalg.det(system.box[frames])) if pbc else np.zeros(len(frames))
    result = SystemEvaluation(label or system.path, system.natoms, len(frames), pbc, volume, {}, {}, {}, {})
    if predictor.kind == "ener":
        _energy_errors(result, system, frames, out, atomic)
    else:
        _tensor_errors(result, system, frames, out, predictor.kind, sel_type)
    return result


def _energy_errors(r: SystemEvaluation, system: DeepmdSystem, frames: np.ndarray, out: Mapping[str, np.ndarray],
                   atomic: bool) -> None:
    labels, n = system.labels, system.natoms
    for key in ("energy", "force", "virial"):
        r.found[key] = system.has_label(key)
    r.ref["energy"], r.pred["energy"] = labels["energy"][frames, 0], out["energy"]
    r.ref["force"] = _to_file_order(labels["force"][frames], system.idx_map)
    r.pred["force"] = _to_file_order(out["force"], system.idx_map)
    r.ref["virial"], r.pred["virial"] = labels["virial"][frames], out["virial"]
    r.pred["atom_energy"] = _to_file_order(out["atom_energy"], system.idx_map)
    if r.found["energy"]:
        r.errors.update(_stat("e", r.pred["energy"], r.ref["energy"]))
        r.errors.update(_stat("ea", r.pred["energy"], r.ref["energy"], 1.0 / n))
    if r.found["force"]:
        r.errors.update(_stat("f", r.pred["force"], r.ref["force"]))
    if r.found["virial"] and r.pbc:
        r.errors.update(_stat("v", r.pred["virial"], r.ref["virial"]))
        r.errors.update(_stat("va", r.pred["virial"], r.ref["virial"], 1.0 / n))
        ok = r.volume > 0
        if ok.any():
            vol = r.volume[ok, None]
            r.errors.update(_stat("s", -r.pred["virial"][ok] / vol, -r.ref["virial"][ok] / vol))
    elif r.found["virial"]:
        r.notes.append("virial labels ignored: the system is not periodic")
    if atomic and "atom_ener" in labels:
        r.found["atom_ener"] = system.has_label("atom_ener")
        r.ref["atom_energy"] = _to_file_order(labels["atom_ener"][frames, :, 0], system.idx_map)
        if r.found["atom_ener"]:
            r.errors.update(_stat("ae", r.pred["atom_energy"], r.ref["atom_energy"]))


def _tensor_errors(r: SystemEvaluation, system: DeepmdSystem, frames: np.ndarray, out: Mapping[str, np.ndarray],
                   kind: str, sel_type: Sequence[int]) -> None:
    glob, atom = TENSOR_LABELS[kind].global_key, TENSOR_LABELS[kind].atomic_key
    file_types = _to_file_order(system.atype[None], system.idx_map)[0]
    sel_mask = np.isin(file_types, list(sel_type))
    r.nsel = int(sel_mask.sum())
    r.pred[glob] = out["global"]
    r.pred[atom] = _to_file_order(out["atomic"], system.idx_map)[:, sel_mask]
    r.ref[atom] = _to_file_order(system.labels[atom][frames], system.idx_map)[:, sel_mask]
    r.found[glob], r.found[atom] = system.has_label(glob), system.has_label(atom)
    if r.found[glob]:
        r.ref[glob] = system.labels[glob][frames]
    elif r.found[atom]:  # DeePMD's global tensor is the sum of the atomic ones
        r.ref[glob] = r.ref[atom].sum(axis=1)
        r.found[f"{glob}_from_atomic"] = True
        r.notes.append(f"no {glob} labels: compared with the sum of the {atom} labels")
    else:
        r.ref[glob] = np.zeros_like(out["global"])
    if r.found[glob] or r.found.get(f"{glob}_from_atomic"):
        r.errors.update(_stat("", r.pred[glob], r.ref[glob]))
        if r.nsel:
            rmse, weight = r.errors["rmse"]
            r.errors["rmse_sqrtn"] = (rmse / math.sqrt(r.nsel), weight)
            r.errors["rmse_n"] = (rmse / r.nsel, weight)
    if r.found[atom] and r.nsel:
        r.errors.update(_stat("atomic", r.pred[atom], r.ref[atom]))


def evaluate(model: Any, task: str, systems: Any, nframes: int | None = None, *, atomic: bool = False,
             shuffle_seed: int | None = None, loader: SystemLoader | None = None,
             predictor: HeadPredictor | None = None, chunk_atoms: int = DEFAULT_CHUNK_ATOMS) -> HeadEvaluation:
    """Evaluate head ``task`` of ``model`` on ``systems`` (paths, ``builtin:`` names, folders holding systems, or
    :class:`DeepmdSystem` objects loaded with :func:`head_requirements`); the first ``nframes`` frames of each
    system (all when None), shuffled first with ``shuffle_seed``. Returns DeePMD-weighted metrics and per-frame
    arrays (:class:`HeadEvaluation`). Without ``predictor``, the head's predictor is compiled when the evaluation
    makes at least :data:`COMPILE_MIN_CALLS` model calls, eager otherwise: one rule, so ``mtbench.test`` and the
    end-of-run evaluation of the same frames run the same path and agree exactly.
    """
    mt = as_model(model)
    check_head(mt, task)
    sel_type = head_sel_type(mt, task) if mt.heads[task].kind != "ener" else []
    loader = loader or SystemLoader(mt.type_map)
    req = head_requirements(mt, task, atomic=atomic)
    items = [systems] if isinstance(systems, (str, os.PathLike, DeepmdSystem)) else list(systems)
    loaded: list[DeepmdSystem] = []
    for item in items:
        if isinstance(item, DeepmdSystem):
            loaded.append(item)
        else:
            for path in system_paths([item]):
                loaded.extend(loader.load(path, req))
    if predictor is None:
        calls = planned_calls(loaded, nframes, mt.neighbor_specs(), chunk_atoms)
        predictor = HeadPredictor(mt, task, compiled=calls >= COMPILE_MIN_CALLS)
    rng = None if shuffle_seed is None else np.random.default_rng(shuffle_seed)
    results = [evaluate_system(predictor, s, nframes=nframes, atomic=atomic, sel_type=sel_type, rng=rng,
                               chunk_atoms=chunk_atoms) for s in loaded]
    merged = merge_errors({k: v for k, v in r.errors.items() if k not in PER_SYSTEM_ONLY} for r in results)
    return HeadEvaluation(task, mt.heads[task].kind, results, {k: v for k, (v, _) in merged.items()},
                          {k: w for k, (_, w) in merged.items()}, sel_type)


# ------------------------------------------------------------------------------------------------------ dp test files
def _savetxt(path: Path, data: np.ndarray, header: str, append: bool) -> None:
    """dp test's writer: a header only when the file starts empty; float64 ``%.18e`` columns."""
    write_header = "" if append and path.exists() and path.stat().st_size > 0 else header
    with path.open("a" if append else "w", encoding="utf-8") as fh:
        np.savetxt(fh, data, header=write_header)


_VIRIAL_COLS = ("xx", "xy", "xz", "yx", "yy", "yz", "zx", "zy", "zz")


def write_detail_files(result: HeadEvaluation, prefix: str | Path, *, atomic: bool = False) -> list[Path]:
    """``dp test -d PREFIX`` files for ``result``: same names, headers, columns and row order as DeePMD-kit 3.2.

    Energy heads: ``PREFIX.e.out``, ``.e_peratom.out``, ``.f.out``, ``.v.out``, ``.v_peratom.out`` (all systems
    appended in order, the header written once) and ``.s.out`` for periodic systems with virial labels. Tensor heads:
    ``PREFIX.out`` for the first system, ``PREFIX.out.1``, ``.out.2``, ... for the next ones; global tensors, or with
    ``atomic`` the selected atoms' tensors (systems without atomic labels are skipped, as dp test cannot read them).
    Names follow ``Path.with_suffix`` like DeePMD's (``-d out/detail.txt`` gives ``out/detail.e.out``).
    """
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    written: dict[Path, None] = {}
    if result.kind == "ener":
        for k, s in enumerate(result.systems):
            append = k > 0
            pe = np.column_stack([s.ref["energy"], s.pred["energy"]])
            files = [(".e.out", pe, f"{s.path}: data_e pred_e"),
                     (".e_peratom.out", pe / s.natoms, f"{s.path}: data_e pred_e"),
                     (".f.out", np.column_stack([s.ref["force"].reshape(-1, 3), s.pred["force"].reshape(-1, 3)]),
                      f"{s.path}: data_fx data_fy data_fz pred_fx pred_fy pred_fz")]
            vhead = " ".join([f"data_v{c}" for c in _VIRIAL_COLS] + [f"pred_v{c}" for c in _VIRIAL_COLS])
            pv = np.column_stack([s.ref["virial"], s.pred["virial"]])
            files += [(".v.out", pv, f"{s.path}: {vhead}"), (".v_peratom.out", pv / s.natoms, f"{s.path}: {vhead}")]
            if s.found.get("virial") and s.pbc:
                vol = s.volume[:, None]
                shead = " ".join([f"data_s{c}" for c in _VIRIAL_COLS] + [f"pred_s{c}" for c in _VIRIAL_COLS])
                files.append((".s.out", np.column_stack([-s.ref["virial"] / vol, -s.pred["virial"] / vol]),
                              f"{s.path} (eV/Å³): {shead}"))
            for suffix, data, header in files:
                path = prefix.with_suffix(suffix)
                _savetxt(path, data, header, append)
                written[path] = None
        return list(written)
    glob, atom = TENSOR_LABELS[result.kind].global_key, TENSOR_LABELS[result.kind].atomic_key
    comps = TENSOR_COMPONENTS[result.kind]
    group = 0
    for s in result.systems:
        if atomic:
            if not s.found.get(atom) or not s.nsel:
                continue
            ref, pred = s.ref[atom].reshape(s.nframes, -1), s.pred[atom].reshape(s.nframes, -1)
            header = " ".join(f"{p}_{c}{i}" for p in ("data", "pred") for i in range(1, s.nsel + 1) for c in comps)
        else:
            ref, pred = s.ref[glob], s.pred[glob]
            header = " ".join([f"data_{c}" for c in comps] + [f"pred_{c}" for c in comps])
        path = prefix.with_suffix(".out" + (f".{group}" if group else ""))
        _savetxt(path, np.concatenate([ref, pred], axis=1), header, append=False)
        written[path] = None
        group += 1
    return list(written)


# ------------------------------------------------------------------------------------------------------ cross-head
CROSS_METRICS = {"ener": ("rmse_ea", "rmse_ea_centered", "rmse_f", "rmse_va"), "dipole": ("rmse", "rmse_atomic"),
                 "polar": ("rmse", "rmse_atomic")}


@dataclass
class CrossHeadResult:
    """``values[metric][head][data]``: head evaluated on a task's data (NaN: not evaluated / no labels)."""

    heads: list[str]
    data: list[str]
    kinds: dict[str, str]  # head or data name -> kind
    values: dict[str, dict[str, dict[str, float]]]

    def matrix(self, metric: str) -> tuple[list[str], list[str], np.ndarray]:
        """Rows (heads), columns (data) and the values of ``metric`` over the heads/data of its kind."""
        table = self.values[metric]
        rows = [h for h in self.heads if h in table]
        cols = [d for d in self.data if any(d in table[h] for h in rows)]
        mat = np.array([[table[h].get(d, math.nan) for d in cols] for h in rows], dtype=np.float64)
        return rows, cols, mat

    def to_csv(self, path: str | Path) -> Path:
        """Long format: ``metric,head,data,value``."""
        path = Path(path)
        lines = ["metric,head,data,value"]
        for metric, table in self.values.items():
            for head, row in table.items():
                for data, value in row.items():
                    lines.append(f"{metric},{head},{data},{'' if not math.isfinite(value) else repr(float(value))}")
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def to_dict(self) -> dict[str, Any]:
        return {"heads": self.heads, "data": self.data, "kinds": self.kinds,
                "values": {m: {h: _finite(r) for h, r in t.items()} for m, t in self.values.items()}}


def _centered_energy_rmse(result: HeadEvaluation) -> float:
    """Per-atom energy RMSE after removing the mean offset: a level of theory's energy zero is arbitrary."""
    diffs = [(s.pred["energy"] - s.ref["energy"]) / s.natoms for s in result.systems if s.found.get("energy")]
    if not diffs:
        return math.nan
    d = np.concatenate(diffs)
    return float(np.sqrt(np.mean((d - d.mean()) ** 2)))


def cross_head(model: Any, data: Mapping[str, Any], *, data_kinds: Mapping[str, str] | None = None,
               heads: Sequence[str] | None = None, nframes: int | None = None,
               known: Mapping[tuple[str, str], HeadEvaluation] | None = None) -> CrossHeadResult:
    """Every head on every data set (``{name: systems}``) of the same kind (energy on energy data, dipole on dipole,
    ...). ``data_kinds`` gives each data set's kind (default: the kind of the head of that name); ``known`` holds
    evaluations already done, by (head, data name)."""
    mt = as_model(model)
    heads = list(heads or mt.heads)
    kinds = {h: mt.heads[h].kind for h in heads}
    dkinds = dict(data_kinds or {})
    for name in data:
        if name not in dkinds:
            if name not in mt.heads:
                raise SpecError("data", f"kind of data {name!r} unknown (no head of that name); give data_kinds")
            dkinds[name] = mt.heads[name].kind
    loader = SystemLoader(mt.type_map)
    values: dict[str, dict[str, dict[str, float]]] = {}
    for head in heads:
        kind = kinds[head]
        predictor = None
        for name, systems in data.items():
            if dkinds[name] != kind:
                continue
            res = (known or {}).get((head, name))
            if res is None:
                predictor = predictor or HeadPredictor(mt, head, compiled=False)
                res = evaluate(mt, head, systems, nframes, loader=loader, predictor=predictor)
            for metric in CROSS_METRICS[kind]:
                value = _centered_energy_rmse(res) if metric == "rmse_ea_centered" else res.metrics.get(metric, math.nan)
                values.setdefault(metric, {}).setdefault(head, {})[name] = float(value)
    return CrossHeadResult(heads, list(data), {**dkinds, **kinds}, values)
