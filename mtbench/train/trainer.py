"""The multi-task training loop.

Every step draws one task with probability ``fitting_weight[task] / sum`` and takes one Adam step (that task's own
Adam state) on its loss; every ``disp_freq`` steps each task is validated and everything is written to the per-task
lcurve files and the tracker; checkpoints every ``save_freq`` steps and at the end.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from mtbench.data.dataset import TaskDataset, is_mixed_batch
from mtbench.data.requirements import LabelRequirement, label_requirements
from mtbench.errors import MtbenchError, SpecError
from mtbench.loss import Loss, build_loss
from mtbench.model.multitask import MultiTaskModel
from mtbench.rundir import DEFAULT_DISP_FILE, DEFAULT_SAVE_CKPT, RunDir
from mtbench.spec.paths import resolve_system_path
from mtbench.spec.tasks import TaskSpec, task_view
from mtbench.tracking import names
from mtbench.train import statistics
from mtbench.train.best import DIVERGENCE_FACTOR, BestTracker, best_metric_name
from mtbench.train.checkpoint import load_checkpoint, save_checkpoint
from mtbench.train.restart import check_restart
from mtbench.train.signals import StopRequest
from mtbench.train.diagnostics import GradientWindow, gradient_diagnostics
from mtbench.train.distributed import Distribution, current as current_distribution
from mtbench.train.lr import ExpDecayLR
from mtbench.train.optimizer import Adam
from mtbench.train.progress import TrainingProgress
from mtbench.train.sampler import TaskSampler
from mtbench.train.step import TaskSteps, batch_signature, to_inputs

log = logging.getLogger("mtbench")


@dataclass
class TaskRuntime:
    """Everything the loop needs for one task."""

    spec: TaskSpec
    loss: Loss
    train_data: TaskDataset
    val_data: TaskDataset | None
    lr: ExpDecayLR
    optimizer: Adam
    steps: TaskSteps
    numb_btch: int
    train_rng: np.random.Generator
    val_rng: np.random.Generator
    window: list[dict[str, float]] = field(default_factory=list)  # train metrics since the last display
    grad: "GradientWindow" = field(default_factory=lambda: GradientWindow())
    fixed_rng: np.random.Generator | None = None  # validation_data.fixed_batches: draws the fixed batches
    fixed: list[tuple[Any, float, int]] | None = None  # (inputs, natoms, sys_idx) of the fixed batches
    fixed_extra: dict[int, tuple[Any, float, int]] = field(default_factory=dict)  # fixed coverage batches
    lcurve: Any = None
    skipped: int = 0  # steps skipped for a non-finite loss/gradient (on_nonfinite: skip)
    last_loss: float = float("nan")  # the last finite training loss

    @property
    def name(self) -> str:
        return self.spec.name


def _systems(data_cfg: Mapping[str, Any], base_dir: Path | None) -> list[str]:
    systems = data_cfg["systems"]
    if isinstance(systems, str):
        systems = [systems]
    return [resolve_system_path(s, base_dir) for s in systems]


ON_NONFINITE = ("stop", "skip")


class NonFiniteLoss(MtbenchError):
    """A task's loss or gradient became NaN/inf: the run stops at that step (exit 2: the data or the learning rate
    the user chose caused it, and the message says which task, step and rate)."""


def check_labels(task: TaskSpec, requirements: list[LabelRequirement], data: TaskDataset, which: str) -> None:
    """A label that a nonzero loss prefactor needs must exist in at least one system of the task's data."""
    for req in requirements:
        if req.must:
            continue
        if not any(s.has_label(req.key) for s in data.systems):
            raise SpecError(f"loss_dict.{task.name}", f"needs '{req.key}' labels ({req.key}.npy) but none of the "
                            f"{len(data.systems)} system(s) of training.data_dict.{task.name}.{which} has them; "
                            f"set the matching prefactor to 0 or add the labels")


class Trainer:
    """Builds the model, data and optimizers from a normalized spec, then trains."""

    def __init__(self, spec: Mapping[str, Any], run_dir: str | Path, *, base_dir: str | Path | None = None,
                 tracker: Any = None, progress: bool = True, jit_compile: bool = False,
                 distribution: Distribution | None = None) -> None:
        self.spec = spec
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.rundir = RunDir(self.run_dir)
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.tracker = tracker
        self.show_progress = progress
        self.jit_compile = jit_compile
        training = spec["training"]
        self.numb_steps = int(training["numb_steps"])
        self.disp_freq = int(training.get("disp_freq", 1000))
        self.save_freq = int(training.get("save_freq", 1000))
        self.max_ckpt_keep = int(training.get("max_ckpt_keep", 5))
        self.save_ckpt = str(training.get("save_ckpt") or DEFAULT_SAVE_CKPT)
        self.disp_file = str(training.get("disp_file") or DEFAULT_DISP_FILE)
        self.on_nonfinite = str(training.get("on_nonfinite") or "stop")
        if self.on_nonfinite not in ON_NONFINITE:
            raise SpecError("training.on_nonfinite", f"expected one of {', '.join(ON_NONFINITE)}, "
                                                     f"got {self.on_nonfinite!r}")
        self.seed = training.get("seed")
        self.type_map = list(spec["model"]["type_map"])
        self.tasks = task_view(spec)
        self.step = 0
        self.best = BestTracker({t: best_metric_name(ts) for t, ts in self.tasks.items()})
        self.timing: dict[str, Any] = {"steps": [], "step_s": [], "task_first_s": {}, "task_s": {}, "task_steps": {}}
        self.history: dict[str, list[dict[str, float]]] = {t: [] for t in self.tasks}
        self.dist = distribution if distribution is not None else current_distribution()
        with self.dist.scope():  # data-parallel: model and Adam variables mirrored on every replica
            self._setup()

    # --- setup --------------------------------------------------------------------------------------------
    def _setup(self) -> None:
        seq = np.random.SeedSequence(self.seed)
        # child i is the same whatever the count: the first 1 + 2n keep their streams, the last n draw fixed batches
        children = seq.spawn(1 + 3 * len(self.tasks))
        restart = self.spec["training"].get("restart")
        init = self.spec["training"].get("init_frz_model")
        ckpt = load_checkpoint(restart) if restart else None
        stats_heads: set[str] | None = None  # None: every head (and the descriptor) gets fresh statistics
        if ckpt is not None:
            for change in check_restart(ckpt["spec"], self.spec, ckpt["path"]):
                log.info(change)
            self.model = MultiTaskModel.from_dict(ckpt["model"])
        elif init:
            from mtbench.export.init_from_frozen import initial_model

            self.model, stats_heads = initial_model(self.spec, init)
        else:
            self.model = self._fresh_model()
        nspecs = self.model.neighbor_specs()
        self.runtime: dict[str, TaskRuntime] = {}
        ntypes = len(self.type_map)
        for k, (name, ts) in enumerate(self.tasks.items()):
            padded = any(is_mixed_batch((cfg or {}).get("batch_size"))
                         for cfg in (ts.training_data, ts.validation_data))
            loss = build_loss(ts.loss, ts.fitting_net, ntypes, padded=padded)
            req = label_requirements(loss.requirements(), numb_fparam=int(ts.fitting_net.get("numb_fparam", 0) or 0),
                                     numb_aparam=int(ts.fitting_net.get("numb_aparam", 0) or 0))
            key = f"training.data_dict.{name}" if "data_dict" in self.spec["training"] else "training"
            tcfg = ts.training_data
            train_data = TaskDataset(_systems(tcfg, self.base_dir), self.type_map, req,
                                     batch_size=tcfg.get("batch_size", "auto"), sys_probs=tcfg.get("sys_probs"),
                                     auto_prob=tcfg.get("auto_prob", "prob_sys_size"),
                                     key=f"{key}.training_data",
                                     drop_bad_frames=bool(tcfg.get("drop_bad_frames", False)),
                                     replicas=self.dist.replicas)
            self.dist.check_data(f"{key}.training_data.systems", train_data)
            self._report_dropped(name, train_data)
            check_labels(ts, req, train_data, "training_data")
            vcfg = ts.validation_data
            val_data = None
            if vcfg:
                val_data = TaskDataset(_systems(vcfg, self.base_dir), self.type_map, req,
                                       batch_size=vcfg.get("batch_size", 1), sys_probs=vcfg.get("sys_probs"),
                                       auto_prob=vcfg.get("auto_prob", "prob_sys_size"),
                                       key=f"{key}.validation_data",
                                       drop_bad_frames=bool(vcfg.get("drop_bad_frames", False)))
            lr = self.dist.scale_lr(ExpDecayLR.from_config(ts.learning_rate, self.numb_steps),
                                    ts.learning_rate.get("scale_by_worker"))
            opt = Adam(self.model.trainable_variables_of(name), name=f"adam_{name}")
            sig = batch_signature(req, nspecs, int(ts.fitting_net.get("numb_fparam", 0) or 0),
                                  int(ts.fitting_net.get("numb_aparam", 0) or 0))
            steps = TaskSteps(self.model, name, loss, opt, sig, jit_compile=self.jit_compile)
            self.runtime[name] = TaskRuntime(
                spec=ts, loss=loss, train_data=train_data, val_data=val_data, lr=lr, optimizer=opt, steps=steps,
                numb_btch=int((vcfg or {}).get("numb_btch", 1)),
                train_rng=np.random.default_rng(children[1 + 2 * k]),
                val_rng=np.random.default_rng(children[2 + 2 * k]),
                fixed_rng=(np.random.default_rng(children[1 + 2 * len(self.tasks) + k])
                           if val_data is not None and (vcfg or {}).get("fixed_batches") else None))
        self.sampler = TaskSampler.from_spec(
            self.spec["training"].get("sampling") or {"type": "weights"}, list(self.tasks),
            {t: ts.weight for t, ts in self.tasks.items()},
            {t: rt.train_data.nframes for t, rt in self.runtime.items()},
            {t: rt.train_data.total_nbatches for t, rt in self.runtime.items()}, np.random.default_rng(children[0]))
        budget = self.sampler.total_budget
        if budget is not None and budget != self.numb_steps:
            log.warning("epoch budgets add up to %d steps but training.numb_steps is %d: training stops at %d",
                        budget, self.numb_steps, min(budget, self.numb_steps))
        self.diagnostics = dict(self.spec["training"].get("diagnostics") or {})
        self.neighbor_reports = statistics.report_neighbors(self.runtime, nspecs, self.model)
        if ckpt is not None:
            self._restore(ckpt)
        else:
            statistics.compute_statistics(self.model, self.runtime,
                                          int(self.spec["model"].get("data_stat_nbatch", 10)), heads=stats_heads)

    def _report_dropped(self, task: str, data: TaskDataset) -> None:
        """Frames dropped by ``drop_bad_frames``: one log line per system and ``data/<task>/dropped_frames``."""
        for system in data.systems:
            if system.dropped_frames:
                log.warning("%s: %s dropped %d bad frames (drop_bad_frames), %d left", task, system.path,
                            system.dropped_frames, system.nframes)
        if self.tracker is not None and data.dropped_frames:
            self.tracker.log_metrics({names.dropped_frames(task): float(data.dropped_frames)}, step=0)

    def _fresh_model(self) -> MultiTaskModel:
        model_cfg = self.spec["model"]
        fittings = {t: ts.fitting_net for t, ts in self.tasks.items()}
        seed = model_cfg["descriptor"].get("seed", self.seed)
        return MultiTaskModel.from_config(self.type_map, model_cfg["descriptor"], fittings, seed=seed)

    def _restore(self, ckpt: Mapping[str, Any]) -> None:
        state = ckpt["state"]
        self.step = int(state["step"])
        self.sampler.set_state(state["sampler"])
        self.best.best = {t: dict(v) for t, v in state.get("best", {}).items()}
        for name, rt in self.runtime.items():
            rt.optimizer.set_state(ckpt["optimizers"][name])
            ts = state["tasks"][name]
            rt.train_rng.bit_generator.state = ts["train_rng"]
            rt.val_rng.bit_generator.state = ts["val_rng"]
            rt.train_data.set_state(ts["train_data"])
            if rt.val_data is not None and ts.get("val_data") is not None:
                rt.val_data.set_state(ts["val_data"])
            rt.window = [dict(w) for w in ts.get("window") or []]
            rt.skipped = int(ts.get("skipped") or 0)
            grad = ts.get("grad")
            if grad:
                rt.grad.total = None if grad.get("total") is None else np.asarray(grad["total"], dtype=np.float64)
                rt.grad.norm_sum, rt.grad.n = float(grad.get("norm_sum", 0.0)), int(grad.get("n", 0))
        log.info("restarted from %s at step %d", ckpt["path"], self.step)

    # --- checkpoints --------------------------------------------------------------------------------------
    def trainer_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "sampler": self.sampler.get_state(),
            "best": self.best.summary(),
            "tasks": {name: {"train_rng": rt.train_rng.bit_generator.state,
                             "val_rng": rt.val_rng.bit_generator.state,
                             "train_data": rt.train_data.get_state(),
                             "val_data": None if rt.val_data is None else rt.val_data.get_state(),
                             # the display window so far: a resume between displays reports what an
                             # uninterrupted run reports at the next display
                             "window": list(rt.window), "skipped": rt.skipped,
                             "grad": {"total": None if rt.grad.total is None else rt.grad.total.tolist(),
                                      "norm_sum": rt.grad.norm_sum, "n": rt.grad.n}}
                      for name, rt in self.runtime.items()},
        }

    def save(self) -> Path:
        """Write the step checkpoint, point ``checkpoints/checkpoint`` at it and rotate: only step checkpoints
        count against ``max_ckpt_keep`` (the newest kept, by step); best files are never rotated."""
        path = save_checkpoint(self.rundir.step_checkpoint(self.step, self.save_ckpt), model=self.model.to_dict(),
                               optimizers={t: rt.optimizer.get_state() for t, rt in self.runtime.items()},
                               state=self.trainer_state(), spec=dict(self.spec))
        self.rundir.rotate(self.max_ckpt_keep, self.save_ckpt)
        return path

    # --- evaluation ---------------------------------------------------------------------------------------
    def validate(self, rt: TaskRuntime) -> dict[str, float]:
        """DeePMD's validation: ``numb_btch`` batches, per-batch RMSEs averaged with weight = atom count.

        The batches are fresh random ones at every display, or with ``validation_data.fixed_batches`` the same ones
        (drawn once, seeded) at every display, so the curves of two jobs are measured on the same frames. Unlike
        DeePMD, a batch without some label does not turn the whole column into NaN: the average runs over the batches
        that have it, and when none has, one batch of each not yet visited system that carries a label the visited
        ones lack is added for the missing metrics only (NaN only if no validation system has the label).
        """
        if rt.val_data is None:
            return {}
        ratio = tf.constant(rt.lr.ratio(self.step), tf.float64)
        sums: dict[str, float] = {}
        weights: dict[str, float] = {}

        def add(item: tuple[Any, float, int], only: set[str] | None = None) -> None:
            inputs, w, _ = item
            _, metrics = rt.steps.eval(inputs, ratio)
            for k, v in metrics.items():
                v = float(v)
                if math.isfinite(v) and (only is None or k in only):
                    sums[k] = sums.get(k, 0.0) + w * v
                    weights[k] = weights.get(k, 0.0) + w

        seen: set[int] = set()
        for item in self._display_batches(rt):
            add(item)
            seen.add(item[2])
        missing = {k for k in rt.loss.metric_names if k not in weights}
        if missing:
            for sys_idx in _coverage_systems(rt.val_data, seen):
                add(self._coverage_batch(rt, sys_idx), missing)
                missing = {k for k in missing if k not in weights}
                if not missing:
                    break
        return {k: (sums[k] / weights[k] if k in weights else float("nan")) for k in rt.loss.metric_names}

    def _batch_item(self, rt: TaskRuntime, rng: np.random.Generator, sys_idx: int | None = None
                    ) -> tuple[Any, float, int]:
        assert rt.val_data is not None
        batch = rt.val_data.get_batch(rng, sys_idx=sys_idx, nspecs=rt.steps.nspecs)
        return (to_inputs(batch, rt.steps.signature, rt.steps.nspecs), float(batch["natoms"]),
                int(batch["sys_idx"]))

    def _display_batches(self, rt: TaskRuntime) -> list[tuple[Any, float, int]]:
        """This display's ``numb_btch`` batches: the fixed ones (drawn at the first display) or fresh ones."""
        if rt.fixed_rng is None:
            return [self._batch_item(rt, rt.val_rng) for _ in range(rt.numb_btch)]
        if rt.fixed is None:
            rt.fixed = [self._batch_item(rt, rt.fixed_rng) for _ in range(rt.numb_btch)]
        return rt.fixed

    def _coverage_batch(self, rt: TaskRuntime, sys_idx: int) -> tuple[Any, float, int]:
        if rt.fixed_rng is None:
            return self._batch_item(rt, rt.val_rng, sys_idx)
        if sys_idx not in rt.fixed_extra:
            rt.fixed_extra[sys_idx] = self._batch_item(rt, rt.fixed_rng, sys_idx)
        return rt.fixed_extra[sys_idx]

    # --- loop ---------------------------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        """Run from the current step to ``numb_steps``; returns a summary (final metrics, counts, timing)."""
        from mtbench.train.lcurve import LcurveWriter, truncate_lcurve

        if self.step > 0:  # resumed: rows past the checkpoint's step are written again below, so cut them off
            for name in self.runtime:
                dropped = truncate_lcurve(self.rundir.lcurve(name, self.disp_file), self.step)
                if dropped:
                    log.info("%s: %d lcurve row(s) past step %d dropped (trained again now)", name, dropped,
                             self.step)
        writers = {name: LcurveWriter(self.rundir.lcurve(name, self.disp_file), rt.loss.metric_names,
                                      append=self.step > 0) for name, rt in self.runtime.items()}
        self._log_neighbor_metrics()
        if self.tracker is not None and self.dist.kind != "none":
            self.tracker.log_metrics({names.DISTRIBUTED_REPLICAS: float(self.dist.replicas)}, step=self.step)
        progress = TrainingProgress(self.numb_steps, list(self.runtime), enabled=self.show_progress,
                                    start=self.step, counts=self.sampler.counts)
        t_start = time.perf_counter()
        last_disp_time, last_disp_step = t_start, self.step
        final: dict[str, dict[str, float]] = {}
        stop = StopRequest()
        start_step = self.step
        with progress, stop:
            if self.step == 0:
                final = self._display(writers, 0.0, progress)
                last_disp_time = time.perf_counter()
            while self.step < self.numb_steps and not self.sampler.exhausted():
                task = self.sampler.draw()
                rt = self.runtime[task]
                lr = rt.lr.value(self.step)
                t_step = time.perf_counter()
                loss, metrics, desc_grad, finite = self.dist.train_step(
                    task, rt.steps, rt.train_data, rt.train_rng, lr, rt.lr.ratio(self.step), stop)
                ok = bool(finite)  # the step's one host sync: the metrics below are ready with it
                self._time_task(task, time.perf_counter() - t_step)
                if ok:
                    rt.window.append({k: float(v) for k, v in metrics.items()})
                    rt.grad.add(desc_grad.numpy())
                    rt.last_loss = float(loss)
                else:
                    self._nonfinite(task, rt, lr)
                self.step += 1
                progress.advance(task, rt.window[-1].get("rmse", float("nan")) if rt.window else float("nan"))
                last = self.step == self.numb_steps or self.sampler.exhausted()
                if self.step % self.disp_freq == 0 or last:
                    # training-only seconds per step of this block (validation and checkpoints excluded)
                    step_s = (time.perf_counter() - last_disp_time) / max(self.step - last_disp_step, 1)
                    self.timing["steps"].append(self.step)
                    self.timing["step_s"].append(step_s)
                    final = self._display(writers, step_s, progress)
                if self.step % self.save_freq == 0 or last:
                    self.save()
                if self.step % self.disp_freq == 0 or last:
                    last_disp_time, last_disp_step = time.perf_counter(), self.step
                if self.dist.stop_agreed(stop.requested) and not last:  # a signal: checkpoint this step, then return to the caller
                    if self.step % self.save_freq:
                        self.save()
                    break
        wall = time.perf_counter() - t_start
        for w in writers.values():
            w.close()
        if self.tracker is not None and self.best.best:
            self.tracker.log_metrics({names.best_metric(t, b["metric"]): b["value"] for t, b in self.best.best.items()},
                                     step=self.step)
            self.tracker.set_tags({f"best.{t}": f"{b['metric']}={b['value']:.4g} at step {b['step']}"
                                   for t, b in self.best.best.items()})
        return {"steps": self.step, "steps_this_process": self.step - start_step, "start_step": start_step,
                "stopped_by": stop.name or None, "exit_code": stop.exit_code, "wall_s": wall, "final": final, "counts": dict(self.sampler.counts),
                "fractions": self.sampler.fractions(),
                "requested": dict(zip(self.sampler.tasks, map(float, self.sampler.requested))),
                "best": self.best.summary(), "val_best": self._val_best(), "timing": self.timing,
                "run_dir": str(self.run_dir)}

    def _time_task(self, task: str, seconds: float) -> None:
        """Seconds and steps per task in this process (batch, step and sync), each task's first step (its
        tracing) left out: a multi-task run's per-head costs, so that runs with different random mixes of heads
        can be compared (``benchmarks/run.py``)."""
        if task not in self.timing["task_first_s"]:
            self.timing["task_first_s"][task] = seconds
            return
        self.timing["task_s"][task] = self.timing["task_s"].get(task, 0.0) + seconds
        self.timing["task_steps"][task] = self.timing["task_steps"].get(task, 0) + 1

    def _val_best(self) -> dict[str, dict[str, float]]:
        """``{task: {metric: lowest per-display validation value after step 0}}`` at full precision (the lcurve
        files keep 3 digits): the report's ``best`` columns."""
        out: dict[str, dict[str, float]] = {}
        for task, rows in self.history.items():
            for row in rows:
                if row["step"] <= 0:
                    continue
                for k, v in row.items():
                    if k.startswith("val_") and math.isfinite(v):
                        m = k[len("val_"):]
                        cur = out.setdefault(task, {}).get(m)
                        out[task][m] = v if cur is None else min(cur, v)
        return out

    def _display(self, writers: Mapping[str, Any], step_s: float, progress: TrainingProgress) -> dict:
        metrics: dict[str, float] = {}
        final: dict[str, dict[str, float]] = {}
        for name, rt in self.runtime.items():
            val = self.validate(rt)
            trn = _window_mean(rt.window, rt.loss.metric_names)
            rt.window.clear()
            lr = rt.lr.value(self.step)
            writers[name].write(self.step, val, trn, lr)
            final[name] = {"val": val, "trn": trn}
            self.history[name].append({"step": self.step, **{f"val_{k}": v for k, v in val.items()}})
            for k, v in val.items():
                metrics[names.val_metric(name, k)] = v
            for k, v in trn.items():
                metrics[names.train_metric(name, k)] = v
            metrics[names.sampling_count(name)] = float(self.sampler.counts[name])
            metrics[names.sampling_fraction(name)] = self.sampler.fractions()[name]
            if self.step == 0:
                metrics[names.sampling_probability(name)] = float(
                    self.sampler.requested[self.sampler.tasks.index(name)])
            if rt.skipped:
                metrics[names.skipped_steps(name)] = float(rt.skipped)
            progress.set_val(name, val.get("rmse", float("nan")))
        if self.diagnostics.get("grad_cosine", True):
            metrics.update(gradient_diagnostics({n: rt.grad for n, rt in self.runtime.items()}))
        for rt in self.runtime.values():
            rt.grad.reset()
        if self.step > 0:
            self._update_best(final)
        self._check_divergence(final)
        metrics[names.LR] = next(iter(self.runtime.values())).lr.value(self.step)
        if self.step > 0:
            metrics[names.STEP_TIME] = step_s
        if self.tracker is not None:
            self.tracker.log_metrics(metrics, step=self.step)
            flush = getattr(self.tracker, "flush", None)  # a bare log_metrics-only tracker has none
            if flush is not None:
                flush()  # in the store (or the backlog) now: a kill -9 loses at most one display
        progress.report(self.step)
        return final

    def _update_best(self, final: Mapping[str, Mapping[str, Mapping[str, float]]]) -> None:
        """Keep, per task, the checkpoint with the best validation metric so far (``checkpoints/best.<task>.h5``)."""
        for name, res in final.items():
            if self.best.improves(name, res.get("val", {}), self.step):
                save_checkpoint(self.rundir.best_checkpoint(name), model=self.model.to_dict(),
                                optimizers={t: rt.optimizer.get_state() for t, rt in self.runtime.items()},
                                state=self.trainer_state(), spec=dict(self.spec), pointer=False)
                self.best.write(self.rundir)

    def _nonfinite(self, task: str, rt: TaskRuntime, lr: float) -> None:
        """A step whose loss or gradient is NaN/inf (its update was already skipped in-graph): count it, or stop."""
        if self.on_nonfinite == "skip":
            rt.skipped += 1
            log.warning("%s: non-finite loss/gradient at step %d (lr %.3g): update skipped (%d so far)",
                        task, self.step, lr, rt.skipped)
            return
        latest = self.rundir.latest_checkpoint()
        where = f"; the latest checkpoint stays {latest}" if latest else ""
        raise NonFiniteLoss(f"task {task}: non-finite loss or gradient at step {self.step} (lr {lr:.3g}, last finite "
                            f"loss {rt.last_loss:.4g}){where}; check the data and lower the learning rate, or set "
                            "training.on_nonfinite: skip")

    def _check_divergence(self, final: Mapping[str, Mapping[str, Mapping[str, float]]]) -> None:
        """Warn (log line and run tag) when a validation metric grew DIVERGENCE_FACTOR-fold over its lowest value."""
        for name, res in final.items():
            val = res.get("val", {})
            for metric in self.best.observe(name, val):
                note = (f"val {metric} = {val[metric]:.4g} at step {self.step} is over {DIVERGENCE_FACTOR:g}x its "
                        f"best {self.best.floors[name][metric]:.4g}: diverging (lower the learning rate)")
                log.warning("%s: %s", name, note)
                if self.tracker is not None:
                    self.tracker.set_tags({f"mtbench.diverged.{name}": note})

    def _log_neighbor_metrics(self) -> None:
        if self.tracker is None:
            return
        metrics = {}
        for task, reports in self.neighbor_reports.items():
            for spec, max_counts in reports.items():
                for t, c in enumerate(max_counts):
                    atom_type = self.type_map[t] if t < len(self.type_map) else str(t)
                    try:
                        metrics[names.max_neighbors(task, atom_type)] = float(c)
                    except ValueError as exc:  # a type name no metric name can hold: the run goes on without it
                        log.warning("not logged: %s", exc)
        if metrics:
            self.tracker.log_metrics(metrics, step=0)


def _coverage_systems(data: TaskDataset, seen: set[int]) -> list[int]:
    """Systems not in ``seen`` that carry an optional label none of the ``seen`` ones has (in index order, one per
    label set): the only ones that can fill a metric the visited batches left NaN."""
    keys = [r.key for r in data.requirements if not r.must]

    def labels(i: int) -> frozenset[str]:
        return frozenset(k for k in keys if data.systems[i].has_label(k))

    have = frozenset().union(*(labels(i) for i in seen)) if seen else frozenset()
    out, sets = [], set()
    for i in range(data.nsystems):
        extra = labels(i) - have
        if i not in seen and extra and labels(i) not in sets:
            out.append(i)
            sets.add(labels(i))
    return out


def _window_mean(window: list[dict[str, float]], names: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for k in names:
        vals = [w[k] for w in window if k in w and math.isfinite(w[k])]
        out[k] = float(np.mean(vals)) if vals else float("nan")
    return out
