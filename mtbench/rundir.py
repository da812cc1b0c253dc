"""The run folder: every path and file of one training run, and what a path a user gives is.

A run folder (``outputs/runs/<date>/<time>`` or a sweep job ``outputs/multirun/<date>/<time>/<n>``) holds::

    input.json                      the normalized spec (written first, by mtbench.train.run)
    summary.json                    :class:`Summary`, written when training finished
    lcurve.<task>.out               one learning curve per task (``training.disp_file``: see :meth:`RunDir.lcurve`)
    checkpoints/<save_ckpt>-<step>.h5   rotating step checkpoints (``max_ckpt_keep`` newest kept)
    checkpoints/checkpoint          pointer: the name of the latest step checkpoint (what a restart picks)
    checkpoints/best.<task>.h5      best checkpoint per task (never rotated)
    checkpoints/best.json           which metric, value and step each best file holds
    .hydra/                         Hydra's config.yaml, hydra.yaml, overrides.yaml (Hydra runs only)
    tracking_backlog.jsonl          tracking data the store did not take (mtbench.tracking.backlog)
    tracking_run.json               the MLflow run this folder trains (run id, store, experiment): a resume continues it
    run.lock                        pid, host and start time of the process training in the folder (see :class:`RunLock`)

Frozen models (``python -m mtbench.freeze``) are written where the user says; what they look like is here too,
because :func:`locate` must recognise them: a SavedModel folder (with mtbench's model file in
``assets/mtbench_model.h5``; "united" when it holds every head), a per-head folder (``manifest.json`` and
``<task>/`` or ``<task>.dp``), mtbench's model file and DeePMD-kit's ``.dp`` file (both HDF5, told apart by
their ``@class``). This module writes no checkpoint or model file (``mtbench.train.checkpoint`` and
``mtbench.export`` do); it names them, rotates them and reads their headers.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any, overload

from mtbench.errors import DataError, MtbenchError
from mtbench.spec.registry import TRAINING
from mtbench.train.lcurve import Lcurve, read_lcurve

INPUT = "input.json"
SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"
POINTER = "checkpoint"  # text file in the checkpoint folder naming the latest step checkpoint
BEST_JSON = "best.json"
HYDRA = ".hydra"
BACKLOG = "tracking_backlog.jsonl"
BACKLOG_REPLAYED = "tracking_backlog.replayed.jsonl"
TRACKING_RUN = "tracking_run.json"
LOCK = "run.lock"
CKPT_SUFFIX = ".h5"

CHECKPOINT_CLASS = "MTBenchCheckpoint"  # @class of a checkpoint file
MODEL_FILE_CLASS = "MTBenchModelFile"  # @class of mtbench's own (frozen) model file
SAVEDMODEL_ASSET = "mtbench_model.h5"  # mtbench's model file inside a SavedModel's assets/
FROZEN_MANIFEST = "manifest.json"  # of a per-head frozen folder

DEFAULT_DISP_FILE: str = TRAINING["disp_file"].default
DEFAULT_SAVE_CKPT: str = TRAINING["save_ckpt"].default


def best_name(task: str) -> str:
    """File name of a task's best checkpoint in ``checkpoints/``."""
    return f"best.{task}{CKPT_SUFFIX}"


def lcurve_name(task: str, disp_file: str = DEFAULT_DISP_FILE) -> str:
    """``training.disp_file`` with the task before its suffix: ``lcurve.out`` -> ``lcurve.<task>.out``.

    Every run, single-task too (its task is ``training.task_name``, ``default``), has one file per task, so the
    default names (``lcurve.<task>.out``) stay what they always were.
    """
    p = Path(disp_file)
    return str(p.with_name(f"{p.stem}.{task}{p.suffix}"))


# ------------------------------------------------------------------------------------------------ summary.json


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


@dataclass
class Summary:
    """``summary.json``: what a finished run reports (the trainer's summary plus tracking facts).

    Non-finite floats are written as ``null`` (JSON has no NaN). Keys this class does not know are kept in
    ``extra`` and written back, so a round trip loses nothing.
    """

    steps: int | None = None
    wall_s: float | None = None
    final: dict[str, dict[str, dict[str, float | None]]] = field(default_factory=dict)  # task -> val/trn -> m -> v
    counts: dict[str, int] = field(default_factory=dict)  # steps trained per task
    fractions: dict[str, float] = field(default_factory=dict)
    requested: dict[str, float] = field(default_factory=dict)  # sampling probabilities asked for
    best: dict[str, dict[str, Any]] = field(default_factory=dict)  # = checkpoints/best.json
    # {"steps": [...], "step_s": [...], "task_s": {task: s}, "task_steps": {task: n}, "task_first_s": {task: s}}
    # (this process's steps; task_s/task_steps without each task's first, traced step)
    timing: dict[str, Any] = field(default_factory=dict)
    run_dir: str | None = None
    objective: float | None = None
    run_id: str | None = None
    tracking_uri: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Summary:
        known = {f.name for f in fields(cls)} - {"extra"}
        kw = {k: v for k, v in data.items() if k in known and v is not None}
        return cls(**kw, extra={k: v for k, v in data.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (``null`` for non-finite numbers)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return _jsonable({**out, **self.extra})

    def val(self, task: str) -> dict[str, float | None] | None:
        """A task's final validation metrics (None when the run has none for it)."""
        return (self.final.get(task) or {}).get("val")

    @classmethod
    def read(cls, path: str | Path) -> Summary:
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise DataError(str(path), f"not JSON ({exc})") from None
        if not isinstance(data, Mapping):
            raise DataError(str(path), "not a run summary (expected a JSON object)")
        return cls.from_dict(data)

    def write(self, path: str | Path) -> Path:
        return _write_text(Path(path), json.dumps(self.to_dict(), indent=2))


def _write_text(path: Path, text: str) -> Path:
    """Write through a temporary file, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


# ------------------------------------------------------------------------------------------------ the run folder


class _InRun:
    """A file or folder of the run folder as a read-only :class:`RunDir` attribute: ``<under>/<name>``, where
    ``under`` is the folder itself (``path``) or another such attribute (``checkpoints``, ``hydra``)."""

    def __init__(self, name: str, under: str = "path") -> None:
        self.name, self.under = name, under
        self.attr = name

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attr = attr

    @overload
    def __get__(self, run: None, owner: type | None = None) -> _InRun: ...
    @overload
    def __get__(self, run: RunDir, owner: type | None = None) -> Path: ...

    def __get__(self, run: RunDir | None, owner: type | None = None) -> Path | _InRun:
        if run is None:
            return self
        return getattr(run, self.under) / self.name

    def __set__(self, run: RunDir, value: object) -> None:
        raise AttributeError(f"RunDir.{self.attr} is derived from the folder's path; it cannot be set")


class RunDir:
    """Paths and files of one run folder (see the module docstring). Nothing is touched on construction."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir) and self.path.resolve() == other.path.resolve()

    def __hash__(self) -> int:
        return hash(self.path.resolve())

    # --- paths (read-only attributes: a Path each)
    input_json = _InRun(INPUT)
    summary_json = _InRun(SUMMARY)
    checkpoints = _InRun(CHECKPOINTS)
    pointer = _InRun(POINTER, under="checkpoints")
    best_json = _InRun(BEST_JSON, under="checkpoints")
    hydra = _InRun(HYDRA)
    hydra_config = _InRun("config.yaml", under="hydra")
    hydra_runtime = _InRun("hydra.yaml", under="hydra")
    hydra_overrides = _InRun("overrides.yaml", under="hydra")
    backlog = _InRun(BACKLOG)
    backlog_replayed = _InRun(BACKLOG_REPLAYED)
    tracking_run = _InRun(TRACKING_RUN)
    lock_file = _InRun(LOCK)

    def is_run(self) -> bool:
        """A run folder: it has ``input.json``, ``summary.json`` or ``checkpoints/`` (a bare ``Trainer``)."""
        return self.input_json.is_file() or self.summary_json.is_file() or self.checkpoints.is_dir()

    # --- input.json
    def read_input(self) -> dict[str, Any] | None:
        """The spec the run trained (None when there is no ``input.json``)."""
        if not self.input_json.is_file():
            return None
        try:
            data = json.loads(self.input_json.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(str(self.input_json), f"not JSON ({exc})") from None
        return data if isinstance(data, dict) else None

    def disp_file(self, spec: Mapping[str, Any] | None = None) -> str:
        """``training.disp_file`` of ``spec`` (default: the run's ``input.json``)."""
        spec = spec if spec is not None else (self.read_input() or {})
        return str((spec.get("training") or {}).get("disp_file") or DEFAULT_DISP_FILE)

    # --- learning curves
    def lcurve(self, task: str, disp_file: str | None = None) -> Path:
        """A task's learning-curve file (``disp_file`` default: the run's ``training.disp_file``)."""
        return self.path / lcurve_name(task, disp_file if disp_file is not None else self.disp_file())

    def lcurves(self, disp_file: str | None = None) -> dict[str, Path]:
        """``{task: lcurve file}`` of the files present, in name order."""
        disp = Path(disp_file if disp_file is not None else self.disp_file())
        folder = self.path / disp.parent
        prefix, suffix = disp.stem + ".", disp.suffix
        out = {}
        for f in sorted(folder.glob(f"{disp.stem}.*{suffix}")):
            task = f.name[len(prefix): len(f.name) - len(suffix)]
            if task and f.is_file():
                out[task] = f
        return out

    def read_lcurve(self, task: str) -> Lcurve | None:
        path = self.lcurve(task)
        return read_lcurve(path) if path.is_file() else None

    # --- summary.json
    def read_summary(self) -> Summary | None:
        """The run's :class:`Summary` (None while the run has not finished)."""
        return Summary.read(self.summary_json) if self.summary_json.is_file() else None

    def write_summary(self, summary: Summary | Mapping[str, Any]) -> Path:
        if not isinstance(summary, Summary):
            summary = Summary.from_dict(summary)
        return summary.write(self.summary_json)

    # --- checkpoints
    def step_checkpoint(self, step: int, save_ckpt: str = DEFAULT_SAVE_CKPT) -> Path:
        """``checkpoints/<save_ckpt>-<step>.h5``."""
        return self.checkpoints / f"{save_ckpt}-{int(step)}{CKPT_SUFFIX}"

    def step_checkpoints(self, save_ckpt: str = DEFAULT_SAVE_CKPT) -> list[tuple[int, Path]]:
        """The step checkpoints present, ``(step, path)`` by step (best files and others are not among them)."""
        proto = self.step_checkpoint(0, save_ckpt)
        pattern = re.compile(re.escape(f"{Path(save_ckpt).name}-") + r"(\d+)" + re.escape(CKPT_SUFFIX))
        found = []
        if proto.parent.is_dir():
            for f in proto.parent.iterdir():
                m = pattern.fullmatch(f.name)
                if m and f.is_file():
                    found.append((int(m.group(1)), f))
        return sorted(found)

    def rotate(self, keep: int, save_ckpt: str = DEFAULT_SAVE_CKPT) -> list[Path]:
        """Delete all but the ``keep`` newest step checkpoints (by step); best files are never touched."""
        found = self.step_checkpoints(save_ckpt)
        removed = [p for _, p in found[: max(0, len(found) - max(int(keep), 1))]]
        for p in removed:
            p.unlink(missing_ok=True)
        return removed

    def latest_checkpoint(self) -> Path | None:
        """What the pointer names (None without a pointer)."""
        return read_pointer(self.checkpoints)

    def best_checkpoint(self, task: str) -> Path:
        return self.checkpoints / best_name(task)

    def read_best(self) -> dict[str, dict[str, Any]]:
        """``best.json``: ``{task: {"metric", "value", "step", "checkpoint"}}`` ({} when there is none)."""
        if not self.best_json.is_file():
            return {}
        try:
            return dict(json.loads(self.best_json.read_text()))
        except (json.JSONDecodeError, TypeError, ValueError) as exc:
            raise DataError(str(self.best_json), f"not a best-checkpoint record ({exc})") from None

    def write_best(self, best: Mapping[str, Mapping[str, Any]]) -> Path:
        return _write_text(self.best_json, json.dumps(_jsonable(best), indent=2))

    # --- Hydra
    def hydra_yaml(self, which: str = "config") -> dict[str, Any] | None:
        """``.hydra/<which>.yaml`` as plain data (None when absent or unreadable)."""
        path = self.hydra / f"{which}.yaml"
        if not path.is_file():
            return None
        import yaml

        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError:
            return None
        return data

    def launch_dir(self) -> Path | None:
        """The folder Hydra was launched from (``hydra.runtime.cwd``), where relative data paths live."""
        cwd: Any = self.hydra_yaml("hydra")
        for key in ("hydra", "runtime", "cwd"):
            cwd = cwd.get(key) if isinstance(cwd, dict) else None
        return Path(cwd) if isinstance(cwd, str) and cwd else None

    # --- tracking
    def read_tracking_run(self) -> dict[str, Any] | None:
        """``tracking_run.json``: ``{"run_id", "tracking_uri", "experiment_id"}`` (None when absent or unreadable)."""
        try:
            data = json.loads(self.tracking_run.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return data if isinstance(data, dict) and data.get("run_id") else None

    def write_tracking_run(self, run_id: str, tracking_uri: str, experiment_id: str | None) -> Path:
        """Remember which MLflow run this folder trains, so a resume continues that run."""
        return _write_text(self.tracking_run, json.dumps(
            {"run_id": run_id, "tracking_uri": tracking_uri, "experiment_id": experiment_id}, indent=2))

    def lock_holder(self) -> dict[str, Any] | None:
        """What ``run.lock`` says (``pid``, ``host``, ``started``); None when there is no lock."""
        return _read_lock(self.lock_file)

    def in_use(self) -> bool | None:
        """True while a live process holds the folder, False when none does (no lock, or its process is gone),
        None when the holder runs on another host (its liveness cannot be checked from here)."""
        holder = self.lock_holder()
        return False if holder is None else holder_alive(holder)

    def artifacts(self) -> list[Path]:
        """The run's files worth keeping with its tracked run (those present)."""
        paths = [*self.lcurves().values(), self.summary_json, self.best_json]
        return [p for p in paths if p.exists()]


# ------------------------------------------------------------------------------------------------ the lock


class RunInUse(MtbenchError):
    """Another live process trains in this run folder."""


def _read_lock(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def holder_alive(holder: Mapping[str, Any]) -> bool | None:
    """Whether a lock's process still runs: checked on this host only (None: another host, unknown)."""
    if holder.get("host") != socket.gethostname():
        return None
    try:
        os.kill(int(holder.get("pid", -1)), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except (OSError, ValueError, TypeError, OverflowError):
        return False
    return True


class RunLock:
    """``run.lock``: one training process per run folder.

    Created with ``O_EXCL`` (atomic: of two processes exactly one gets it). A lock whose process is gone (same host,
    pid not running: ``kill -9``, a node reboot) is taken over; a live holder, or one on another host, makes
    :meth:`acquire` raise :class:`RunInUse` naming the folder and the holder. Released (deleted) on exit.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run = RunDir(run_dir)
        self.taken_over: dict[str, Any] | None = None  # the dead holder whose lock this one replaced
        self._held = False

    def acquire(self) -> RunLock:
        path = self.run.lock_file
        path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.datetime.now().isoformat(timespec="seconds")}
        for _ in range(5):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = _read_lock(path)
                if holder is None:  # being written this instant, or torn: look again
                    import time

                    time.sleep(0.05)
                    holder = _read_lock(path)
                alive = holder_alive(holder) if holder is not None else False
                if alive is False:  # the holder is gone: move its lock aside atomically (one taker wins)
                    aside = path.with_name(f"{path.name}.stale-{os.getpid()}")
                    try:
                        os.replace(path, aside)
                    except FileNotFoundError:
                        continue
                    self.taken_over = _read_lock(aside) or holder
                    aside.unlink(missing_ok=True)
                    continue
                raise RunInUse(f"run folder {self.run.path} is in use by {_describe_holder(holder)} "
                               f"(lock {path}); wait for it to end or stop it first") from None
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(me))
            self._held = True
            return self
        raise RunInUse(f"run folder {self.run.path}: could not take its lock {path}")

    def release(self) -> None:
        if self._held:
            holder = _read_lock(self.run.lock_file)
            if holder is not None and holder.get("pid") == os.getpid():
                self.run.lock_file.unlink(missing_ok=True)
            self._held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _describe_holder(holder: Mapping[str, Any] | None) -> str:
    if holder is None:
        return "another process"
    return f"pid {holder.get('pid')} on {holder.get('host')} (started {holder.get('started')})"


def write_pointer(folder: str | Path, checkpoint: str | Path) -> Path:
    """Make ``checkpoint`` (a file in ``folder``) the folder's latest."""
    path = Path(folder) / POINTER
    return _write_text(path, Path(checkpoint).name + "\n")


def read_pointer(folder: str | Path) -> Path | None:
    path = Path(folder) / POINTER
    if not path.is_file():
        return None
    return Path(folder) / path.read_text().strip()


# ------------------------------------------------------------------------------------------------ what a path is


class Kind(str, Enum):
    RUN = "run"  # a run folder: its latest checkpoint
    CHECKPOINT_DIR = "checkpoint_dir"  # a folder with a pointer: its latest checkpoint
    CHECKPOINT = "checkpoint"  # a checkpoint file (step or best)
    SAVEDMODEL = "savedmodel"  # a frozen SavedModel of some heads
    UNITED = "united"  # a frozen SavedModel of every head (freeze --united)
    FROZEN_HEADS = "frozen_heads"  # a folder of per-head frozen models with manifest.json
    MODEL_FILE = "mtbench"  # mtbench's own model file
    DP = "deepmd"  # a DeePMD-kit .dp file


@dataclass(frozen=True)
class Located:
    """What :func:`locate` found: the kind, the path, the run folder it belongs to and the checkpoint to load."""

    kind: Kind
    path: Path
    run: RunDir | None = None
    checkpoint: Path | None = None  # RUN/CHECKPOINT_DIR: the pointer's target; CHECKPOINT: the file

    def require_checkpoint(self) -> Path:
        """The checkpoint file this path stands for, or a :class:`DataError` saying why there is none."""
        if self.checkpoint is not None:
            return self.checkpoint
        if self.path.is_dir():
            raise DataError(str(self.path), "no checkpoint found here (expected a 'checkpoint' pointer file or "
                                            "checkpoints/)")
        raise DataError(str(self.path), "not an mtbench checkpoint")


NOT_FOUND = "model not found (expected a run dir, checkpoint, frozen model or .dp file)"


def locate(path: str | Path) -> Located:
    """The one rule for what ``path`` is. Folders: a SavedModel with mtbench's asset, a per-head frozen folder
    (``manifest.json`` with ``heads``), a checkpoint folder (has the pointer), a run folder (``input.json``,
    ``summary.json`` or ``checkpoints/``). Files: by the ``@class`` in their HDF5 header. A checkpoint folder or
    file belongs to the run folder above it (``<run>/checkpoints/x.h5``, or ``<run>/x.h5``)."""
    p = Path(path)
    if not p.exists():
        raise DataError(str(p), NOT_FOUND)
    if p.is_dir():
        asset = p / "assets" / SAVEDMODEL_ASSET
        if asset.is_file():
            meta = _header(asset).get("meta") or "{}"
            united = bool((json.loads(meta) if isinstance(meta, str) else meta).get("united"))
            return Located(Kind.UNITED if united else Kind.SAVEDMODEL, p)
        if _is_frozen_heads(p):
            return Located(Kind.FROZEN_HEADS, p)
        latest = read_pointer(p)
        if latest is not None:
            parent = RunDir(p.parent)
            return Located(Kind.CHECKPOINT_DIR, p, parent if parent.is_run() else None, latest)
        run = RunDir(p)
        if run.is_run():
            return Located(Kind.RUN, p, run, run.latest_checkpoint())
        raise DataError(str(p), "no checkpoint found here (expected a 'checkpoint' pointer file or checkpoints/)")
    header = _header(p)
    cls = header.get("@class")
    if cls == CHECKPOINT_CLASS:
        return Located(Kind.CHECKPOINT, p, run_of_checkpoint(p), p)
    if cls == MODEL_FILE_CLASS:
        return Located(Kind.MODEL_FILE, p)
    if isinstance(header.get("model"), dict) and "descriptor" in header["model"]:
        return Located(Kind.DP, p)
    raise DataError(str(p), "not a model file mtbench knows (mtbench checkpoint/model or DeePMD-kit .dp)")


def run_of_checkpoint(path: str | Path) -> RunDir | None:
    """The run folder a checkpoint file belongs to: ``<run>/checkpoints/x.h5`` or ``<run>/x.h5``."""
    ckpt = Path(path).resolve()
    cand = ckpt.parent.parent if ckpt.parent.name == CHECKPOINTS else ckpt.parent
    run = RunDir(cand)
    return run if run.is_run() else None


def run_dir_of(path: str | Path) -> RunDir | None:
    """The run folder behind any model path (None when it has none, or the path is no model at all)."""
    try:
        return locate(path).run
    except DataError:
        return None


def _is_frozen_heads(p: Path) -> bool:
    manifest = p / FROZEN_MANIFEST
    if not manifest.is_file():
        return False
    try:
        data = json.loads(manifest.read_text())
    except json.JSONDecodeError:
        return False
    return isinstance(data, dict) and isinstance(data.get("heads"), dict)


def _header(p: Path) -> dict[str, Any]:
    from mtbench.model.serialization import read_header

    return read_header(p)


def slurm_step(env: Mapping[str, str] | None = None) -> tuple[str, int] | None:
    """``("<job id>.<step id>", this task's rank)`` when this process is one task of a multi-task ``srun`` step
    (a distributed run: every task must pick the same run folder), else None."""
    env = os.environ if env is None else env
    job, step = env.get("SLURM_JOB_ID"), env.get("SLURM_STEP_ID")
    try:
        ntasks = int(env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS") or 1)
        rank = int(env.get("SLURM_PROCID") or 0)
    except ValueError:
        return None
    if not job or step is None or ntasks < 2:
        return None
    return f"{job}.{step}", rank


def new_sweep_dir(output_dir: str | Path = "outputs") -> Path:
    """``<output>/multirun/<date>/<HH-MM-SS>`` (Hydra's usual name), or ``<HH-MM-SS>-1``, ``-2``, ... when another
    multirun started in the same second: created atomically, so two sweeps never share a folder."""
    now = datetime.datetime.now()
    day = Path(output_dir) / "multirun" / now.strftime("%Y-%m-%d")
    day.mkdir(parents=True, exist_ok=True)
    return _make_first_free(day, now.strftime("%H-%M-%S"), "sweep")


def _make_first_free(day: Path, stem: str, what: str) -> Path:
    """Create ``day/stem``, else ``stem-1``, ``stem-2``, ...: mkdir is atomic, so exactly one process gets each."""
    for n in range(1000):
        path = day / (stem + (f"-{n}" if n else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free {what} folder under {day}")


def new_run_dir(output_dir: str | Path = "outputs", env: Mapping[str, str] | None = None) -> Path:
    """``<output>/runs/<date>/<time to the microsecond>-<pid>``, created atomically so launches never share one.

    Under ``srun`` with several tasks (:func:`slurm_step`) every task computes its own time stamp and pid, so the
    folder is ``<output>/runs/slurm/<job id>.<step id>`` instead: the same for every task, created by task 0
    only (the chief; the others write nothing there). A requeued job gets the same folder again, so
    ``training.restart=auto`` resumes it."""
    shared = slurm_step(env)
    if shared is not None:
        name, rank = shared
        path = Path(output_dir) / "runs" / "slurm" / name
        if rank == 0:
            path.mkdir(parents=True, exist_ok=True)
        return path
    now = datetime.datetime.now()
    day = Path(output_dir) / "runs" / now.strftime("%Y-%m-%d")
    day.mkdir(parents=True, exist_ok=True)
    return _make_first_free(day, now.strftime("%H-%M-%S-%f") + f"-{os.getpid()}", "run")
