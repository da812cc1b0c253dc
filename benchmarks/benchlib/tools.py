"""The trainers being compared: how to install and start each, and how to read its learning curve and timing.

Every tool trains the same input.json in its own run folder. What each reports about time differs:
DeePMD-kit 2.2.11 logs training time (without validation) and wall time per ``disp_freq`` block, DeePMD-kit 3.x
logs only wall time per block, mtbench writes ``time/step_s`` to its tracker (and, when present, to
``summary.json["timing"]``). The learning-curve timestamps of :mod:`benchlib.monitor` measure all of them alike.
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import os
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib.envs import (
    RECIPES,
    clean_env,
    default_venv_root,
    dist_versions,
    ensure_venv,
    venv_python,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

# DeePMD-kit 2.2.x: "batch     100 training time 31.05 s, testing time 0.21 s, total wall time 31.40 s"
_DP2_BLOCK = re.compile(r"batch\s+(\d+) training time ([0-9.eE+-]+) s, testing time ([0-9.eE+-]+) s, "
                        r"total wall time ([0-9.eE+-]+) s")
# DeePMD-kit 3.x: "Batch     100: total wall time = 31.40 s" (optionally ", eta = ...")
_DP3_BLOCK = re.compile(r"Batch\s+(\d+): total wall time = ([0-9.eE+-]+) s")
_DP_AVG = re.compile(r"average training time: ([0-9.eE+-]+) s/batch")


@dataclass
class TimingBlock:
    """One ``disp_freq`` block as the tool itself reports it (seconds for the whole block)."""

    step: int
    steps: int
    train_s: float | None = None  # training only (DeePMD-kit 2.2 "training time", mtbench time/step_s)
    wall_s: float | None = None  # training + validation of the block


def _ensure_mtbench() -> None:
    """mtbench from this checkout (the one the benchmark runs, see MtbenchTool.env), not another installed copy."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))


def _lcurve_module():
    """mtbench's lcurve reader: the one parser of DeePMD-style learning curves (DeePMD-kit's files too)."""
    _ensure_mtbench()
    from mtbench.train import lcurve

    return lcurve


def lcurve_step(line: str) -> int | None:
    """The step of a learning-curve line that starts a row; None for comments and continuation lines.

    DeePMD-kit 2.2's multi-task lcurve writes each row (and the header) as one physical line per task; only the
    first starts with the integer step.
    """
    return _lcurve_module().row_step(line)


def read_lcurve(path: Path, tasks: Sequence[str] = ()) -> dict[str, list[dict[str, float]]]:
    """DeePMD-style lcurve file as rows per task: ``{task: [{"step": ..., "rmse_e_val": ...}, ...]}``.

    DeePMD-kit's multi-task lcurve prefixes every column with the task name (``water_ener_rmse_e_val``);
    columns with no known task prefix go to task ``"default"``.
    """
    by_task = _lcurve_module().read_lcurve(path).by_task(tasks)
    return {task: [dict(zip(lc.columns, row)) for row in lc.rows] for task, lc in by_task.items()}


def parse_dp_log(text: str, disp_freq: int) -> list[TimingBlock]:
    """Per-block timing lines of a DeePMD-kit log (2.2 or 3.x format)."""
    blocks: list[TimingBlock] = []
    last = 0
    for m in _DP2_BLOCK.finditer(text):
        step = int(m.group(1))
        blocks.append(TimingBlock(step, step - last, train_s=float(m.group(2)), wall_s=float(m.group(4))))
        last = step
    if blocks:
        return blocks
    for m in _DP3_BLOCK.finditer(text):
        step = int(m.group(1))
        if step == 0:
            continue
        blocks.append(TimingBlock(step, step - last, wall_s=float(m.group(2))))
        last = step
    return blocks


def parse_mtbench_timing(summary: Mapping) -> list[TimingBlock]:
    """mtbench's own per-block step time, if its summary.json carries it.

    Accepted: ``summary["timing"] = {"steps": [...], "step_s": [...]}`` (display steps and the mean seconds
    per step of the block that ends there, validation excluded, i.e. the ``time/step_s`` metric).
    """
    timing = summary.get("timing") if isinstance(summary, Mapping) else None
    if not isinstance(timing, Mapping):
        return []
    steps, step_s = timing.get("steps") or [], timing.get("step_s") or []
    blocks, last = [], 0
    for step, s in zip(steps, step_s):
        step = int(step)
        if step <= 0 or s is None or not math.isfinite(float(s)):
            last = step
            continue
        blocks.append(TimingBlock(step, step - last, train_s=float(s) * (step - last)))
        last = step
    return blocks


class Tool:
    """One trainer under test. Subclasses fill in the command and the parsing of its outputs."""

    name = "tool"
    multitask = False
    reference = False

    def prepare(self, venv_root: Path, log=print) -> None:
        """Install what the tool needs (idempotent)."""

    def command(self, input_name: str) -> list[str]:
        raise NotImplementedError

    def input_for(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The shared input as this tool runs it (default: unchanged)."""
        return spec

    def env(self, threads: int) -> dict[str, str]:
        return thread_env(clean_env(), threads)

    def lcurve_path(self, run_dir: Path, energy_task: str) -> Path | None:
        """The learning-curve file whose new lines time the blocks (None until it exists)."""
        path = run_dir / "lcurve.out"
        return path if path.exists() else None

    def lcurves(self, run_dir: Path, tasks: Sequence[str]) -> dict[str, list[dict[str, float]]]:
        path = run_dir / "lcurve.out"
        return read_lcurve(path, tasks) if path.exists() else {}

    def own_timing(self, run_dir: Path, log_text: str, disp_freq: int) -> list[TimingBlock]:
        return parse_dp_log(log_text, disp_freq)

    def versions(self) -> dict[str, str | None]:
        return {}

    def head_steps(self, run_dir: Path) -> dict[str, int]:
        """Steps trained per multi-task head ({} where the tool does not say)."""
        return {}

    def head_step_s(self, run_dir: Path) -> dict[str, float]:
        """Mean seconds of one training step per head, timed step by step ({} where the tool does not time them)."""
        return {}

    def __repr__(self) -> str:
        return self.name


def thread_env(env: dict[str, str], threads: int, inter: int | None = None) -> dict[str, str]:
    """Same thread pools for every tool: ``threads`` intra-op, ``inter`` inter-op (default 1, or
    ``$MTBENCH_BENCH_INTER``)."""
    inter = inter if inter is not None else int(os.environ.get("MTBENCH_BENCH_INTER", "1"))
    env.update({
        "OMP_NUM_THREADS": str(threads),
        "TF_INTRA_OP_PARALLELISM_THREADS": str(threads),
        "TF_INTER_OP_PARALLELISM_THREADS": str(inter),
        "DP_INTRA_OP_PARALLELISM_THREADS": str(threads),
        "DP_INTER_OP_PARALLELISM_THREADS": str(inter),
        "MTBENCH_INTER_THREADS": str(inter),
        "MTBENCH_THREADS": str(threads),
    })
    return env


class DeepmdTool(Tool):
    """``dp [--tf|--pt] train input.json --skip-neighbor-stat`` from its own venv (or the project's)."""

    def __init__(self, name: str, recipe: str, backend: str | None, multitask: bool, reference: bool,
                 use_project_venv_if: str | None = None, project_needs: str | None = None) -> None:
        self.name = name
        self.recipe = RECIPES[recipe]
        self.backend = backend
        self.multitask = multitask
        self.reference = reference
        self._project_prefix = use_project_venv_if
        self._project_needs = project_needs
        self._python: Path | None = None

    def _project_python(self) -> Path | None:
        """The running interpreter, if it already has the wanted DeePMD-kit (saves a second multi-GB venv)."""
        if self._project_prefix is None:
            return None
        try:
            if not importlib.metadata.version("deepmd-kit").startswith(self._project_prefix):
                return None
            if self._project_needs:
                importlib.metadata.version(self._project_needs)
        except importlib.metadata.PackageNotFoundError:
            return None
        dp = Path(sys.executable).parent / "dp"
        return Path(sys.executable) if dp.exists() else None

    def prepare(self, venv_root: Path | None = None, log=print) -> None:
        if self._python is not None:
            return
        self._python = self._project_python()
        if self._python is None:
            self._python = venv_python(ensure_venv(self.recipe, venv_root or default_venv_root(), log=log))

    @property
    def dp(self) -> Path:
        if self._python is None:
            raise RuntimeError(f"{self.name}: prepare() first")
        return self._python.parent / "dp"

    def command(self, input_name: str) -> list[str]:
        backend = [f"--{self.backend}"] if self.backend else []
        if self.recipe.name.startswith("deepmd-kit-2.2"):  # counts the steps of each head (head_steps.json)
            return [str(self._python), str(Path(__file__).with_name("dp_head_steps.py")), "train", input_name,
                    "--skip-neighbor-stat"]
        return [str(self.dp), *backend, "train", input_name, "--skip-neighbor-stat"]

    def head_steps(self, run_dir: Path) -> dict[str, int]:
        path = run_dir / "head_steps.json"
        return json.loads(path.read_text())["head_steps"] if path.exists() else {}

    def versions(self) -> dict[str, str | None]:
        if self._python is None:
            return {}
        return {k: v for k, v in dist_versions(self._python, ("deepmd-kit", "tensorflow", "numpy", "torch")).items()
                if v is not None}


class MtbenchTool(Tool):
    """``python -m mtbench.train input.json --tracking none --no-progress -o out`` with this interpreter."""

    name = "mtbench"
    multitask = True
    FINAL_NFRAMES = 2

    def command(self, input_name: str) -> list[str]:
        return [sys.executable, "-m", "mtbench.train", input_name, "--tracking", "none", "--no-progress",
                "-o", "out"]

    def input_for(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The end-of-run evaluation, which DeePMD-kit does not do, capped at FINAL_NFRAMES frames per validation
        system, so it neither dominates a short run's wall time nor sets its peak RSS (it still runs: the path is
        exercised; run.py reports the time after the last learning-curve line as ``after_last_line_s``)."""
        out = copy.deepcopy(spec)
        training = out["training"]
        for block in [*training.get("data_dict", {}).values(), training]:
            if "validation_data" in block:
                block["validation_data"].setdefault("final_nframes", self.FINAL_NFRAMES)
        return out

    def env(self, threads: int) -> dict[str, str]:
        import os

        env = thread_env(dict(os.environ), threads)
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env

    def lcurve_path(self, run_dir: Path, energy_task: str) -> Path | None:
        # one file per task: watch the energy task's (single-task runs name their task "default")
        _ensure_mtbench()
        from mtbench.rundir import RunDir

        path = RunDir(run_dir / "out").lcurve(energy_task)
        return path if path.exists() else None

    def lcurves(self, run_dir: Path, tasks: Sequence[str]) -> dict[str, list[dict[str, float]]]:
        from mtbench.rundir import RunDir

        return {task: read_lcurve(f).get("default", []) for task, f in RunDir(run_dir / "out").lcurves().items()}

    @staticmethod
    def _summary(run_dir: Path) -> dict[str, Any]:
        """The run's summary.json as a dict, read by its owner (``RunDir``); {} when absent or unreadable."""
        _ensure_mtbench()
        from mtbench.errors import MtbenchError
        from mtbench.rundir import RunDir

        try:
            summary = RunDir(run_dir / "out").read_summary()
            return summary.to_dict() if summary is not None else {}
        except (MtbenchError, TypeError, ValueError):
            return {}

    def own_timing(self, run_dir: Path, log_text: str, disp_freq: int) -> list[TimingBlock]:
        return parse_mtbench_timing(self._summary(run_dir))

    def head_steps(self, run_dir: Path) -> dict[str, int]:
        return dict(self._summary(run_dir).get("counts") or {})

    def head_step_s(self, run_dir: Path) -> dict[str, float]:
        timing = self._summary(run_dir).get("timing") or {}
        secs, steps = timing.get("task_s") or {}, timing.get("task_steps") or {}
        return {t: secs[t] / steps[t] for t in secs if steps.get(t)}

    def versions(self) -> dict[str, str | None]:
        out = {}
        for dist in ("mtbench", "tensorflow", "numpy"):
            try:
                out[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                out[dist] = None
        return out


def make_tools() -> dict[str, Tool]:
    """All tools this benchmark knows, by CLI name. DeePMD-kit 2.2.11 is the reference for ratios."""
    return {
        "deepmd-2.2.11": DeepmdTool("deepmd-2.2.11", "deepmd-kit-2.2.11", None, multitask=True, reference=True),
        # DeePMD-kit 3.x trains v2-style multi-task input.json with neither backend (v3 multi-task is PyTorch-only
        # with model_dict/shared_dict): single-task only here.
        "deepmd-3.2-tf": DeepmdTool("deepmd-3.2-tf", "deepmd-kit-3.2.0", "tf", multitask=False, reference=False,
                                    use_project_venv_if="3.2"),
        "deepmd-3.2-pt": DeepmdTool("deepmd-3.2-pt", "deepmd-kit-3.2.0-torch", "pt", multitask=False,
                                    reference=False, use_project_venv_if="3.2", project_needs="torch"),
        "mtbench": MtbenchTool(),
    }


REFERENCE_TOOL = "deepmd-2.2.11"
