"""Data-parallel training on ``tf.distribute``: the strategy, this process's rank, and the rank-coherent step.

``training.distributed``:

- ``none``: one process, one device (the plain :class:`~mtbench.train.step.TaskSteps` step);
- ``mirrored``: ``tf.distribute.MirroredStrategy`` over this machine's devices (``training.devices``, default
  every GPU, else every logical CPU device);
- ``multi_worker``: ``tf.distribute.MultiWorkerMirroredStrategy``, the cluster from ``TF_CONFIG`` or, under
  SLURM without ``TF_CONFIG``, from SLURM's environment (``SlurmClusterResolver``).

Semantics (rank-coherent): every replica draws the same task each step (the task sampler and the data RNGs are
seeded identically on every rank); the data draws one *global* batch of ``replicas x batch_size`` frames and
replica ``r`` trains on the ``r``-th contiguous share of it; the replicas' gradients are averaged with the
strategy's own collectives (``ReplicaContext.all_reduce``, weighted by frame counts, so the mean equals the
global batch's) and every replica applies the same update with the task's own Adam state. N replicas with batch
b therefore train exactly like one process with batch N*b on the same frames. Validation runs on the full
validation batches on every rank (no collective; identical numbers); only the chief writes files or tracks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from mtbench.errors import MtbenchError, SpecError
from mtbench.train.signals import EXIT_CODES


log = logging.getLogger("mtbench")

KINDS = ("none", "mirrored", "multi_worker")
SCALE_BY_WORKER = ("linear", "sqrt", "none")
#: seconds a collective waits for the other workers before the step fails (``training.collective_timeout``)
DEFAULT_COLLECTIVE_TIMEOUT = 300.0
#: the signals a rank may stop on, in the order that decides when ranks saw different ones
STOP_SIGNALS = tuple(int(s) for s in EXIT_CODES)


class WorkerLost(MtbenchError):
    """Another worker died or stopped answering: this one stops (the latest checkpoint stays valid)."""


def lr_scale(how: str | None, replicas: int) -> float:
    """DeePMD-kit v2's ``learning_rate.scale_by_worker``: the start lr times N (linear), sqrt(N) or 1."""
    how = "linear" if how is None else str(how)
    if how not in SCALE_BY_WORKER:
        raise SpecError("learning_rate.scale_by_worker", f"expected one of {', '.join(SCALE_BY_WORKER)}, got {how!r}")
    return {"linear": float(replicas), "sqrt": math.sqrt(replicas), "none": 1.0}[how]


class Distribution:
    """One process's view of a training run: how many replicas, which ones are here, who writes.

    The single-process case (``kind == "none"``) is this class with no strategy: :meth:`train_step` is then the
    plain compiled step on the whole batch, so the trainer has one code path.
    """

    def __init__(self, kind: str = "none", strategy: Any = None, *, worker: int = 0, workers: int = 1,
                 worker_addresses: Sequence[str] = ()) -> None:
        self.kind = kind
        self.strategy = strategy
        self.worker = worker
        self.workers = workers
        self.worker_addresses = list(worker_addresses)
        self.replicas = 1 if strategy is None else int(strategy.num_replicas_in_sync)
        self._compiled: dict[str, Callable] = {}
        self._stop_agreed = False

    @property
    def is_chief(self) -> bool:
        """Worker 0 writes the run folder, the checkpoints and the MLflow run; the others write nothing there."""
        return self.worker == 0

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "replicas": self.replicas, "workers": self.workers, "worker": self.worker}

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Where the model and optimizers are built: mirrored variables under a strategy."""
        if self.strategy is None:
            yield
            return
        import tensorflow as tf

        with self.strategy.scope(), tf.variable_creator_scope(_empty_stays_local):
            yield

    def scale_lr(self, lr: Any, how: str | None) -> Any:
        """The task's :class:`~mtbench.train.lr.ExpDecayLR` with start (and stop) lr scaled by ``scale_by_worker``;
        the decay rate and the prefactor ratio lr/start_lr stay those of the unscaled schedule."""
        factor = lr_scale(how, self.replicas)
        if factor == 1.0:
            return lr
        return dataclasses.replace(lr, start_lr=lr.start_lr * factor, stop_lr=lr.stop_lr * factor)

    def check_data(self, where: str, data: Any) -> None:
        """Every set must hold a frame for each replica (a batch is at most one set)."""
        if self.replicas == 1:
            return
        for system in data.systems:
            smallest = min(system.set_nframes)
            if smallest < self.replicas:
                raise SpecError(where, f"{system.path} has a set of {smallest} frame(s), fewer than the "
                                       f"{self.replicas} replicas: each replica needs at least one frame per batch")

    # --- the step ---------------------------------------------------------------------------------------------
    def train_step(self, task: str, steps: Any, data: Any, rng: Any, lr: float, lr_ratio: float,
                   stop: Any = False) -> tuple:
        """Draw the task's (global) batch and take one step: ``(loss, metrics, desc_grad, finite)``, the same
        numbers on every replica. ``stop`` (this rank's :class:`~mtbench.train.signals.StopRequest`, or a bool) is
        all-reduced with the step; read the agreement with :meth:`stop_agreed`. A rank that saw no signal itself
        adopts the one another rank saw (``stop.signum``), so every rank stops with the same exit status."""
        import tensorflow as tf

        from mtbench.train.step import to_inputs

        lr_t, ratio_t = tf.constant(lr, tf.float64), tf.constant(lr_ratio, tf.float64)
        if self.strategy is None:
            batch = data.get_batch(rng, nspecs=steps.nspecs)
            return steps.train(to_inputs(batch, steps.signature, steps.nspecs), lr_t, ratio_t)
        parts = data.get_batches(rng, self.replicas, nspecs=steps.nspecs)
        inputs = self.strategy.experimental_distribute_values_from_function(
            lambda ctx: to_inputs(parts[ctx.replica_id_in_sync_group], steps.signature, steps.nspecs))
        fn = self._compiled.get(task)
        if fn is None:
            fn = self._compiled[task] = self._compile(steps)
        try:
            out = fn(inputs, lr_t, ratio_t, tf.constant(_signal_vector(stop), tf.float64))
            loss, metrics, desc_grad, finite, stops = (self.strategy.experimental_local_results(o)[0] for o in out)
            agreed = _agreed_signal(stops.numpy())
            self._stop_agreed = agreed is not None
            if agreed is not None and hasattr(stop, "signum") and stop.signum is None:
                stop.signum = agreed  # stopped by another rank's signal: this rank exits like that one
        except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
                tf.errors.AbortedError, tf.errors.InternalError) as exc:
            raise WorkerLost(self._lost_message(exc)) from None
        return loss, metrics, desc_grad, finite

    def stop_agreed(self, local: bool) -> bool:
        """Whether to stop after this step: in one process the stop request ``local`` itself; with a strategy,
        whether any rank had one when the step started (all-reduced with it: the same answer on every rank, so no
        rank is left waiting in a collective)."""
        return local if self.strategy is None else self._stop_agreed

    def _compile(self, steps: Any) -> Callable:
        import tensorflow as tf

        strategy = self.strategy

        def replica_step(batch, lr, ratio, stop):
            ctx = tf.distribute.get_replica_context()
            n = tf.cast(tf.shape(batch["coord"])[0], tf.float64)
            # tf.identity: a copy on this replica's device (the host tensor has none, which all_reduce refuses)
            total, stops = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [n, tf.identity(stop)])
            out = steps.step(batch, lr, ratio, reduce=_weighted_mean(ctx, n / total))
            return (*out, stops)

        def step(batch, lr, ratio, stop):
            return strategy.run(replica_step, args=(batch, lr, ratio, stop))

        return tf.function(step, autograph=False)

    def _lost_message(self, exc: Exception) -> str:
        text = str(exc)
        names = sorted({f"worker {t}" for t in _tasks_named(text) if t != self.worker})
        who = ", ".join(names) or "another worker"
        addr = ""
        if len(names) == 1 and self.worker_addresses:
            t = int(names[0].split()[1])
            if t < len(self.worker_addresses):
                addr = f" ({self.worker_addresses[t]})"
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
        return f"{who}{addr} stopped answering (worker {self.worker} gives up: {first[:160]})"


def _signal_vector(stop: Any) -> list[float]:
    """This rank's stop request as a one-hot vector over :data:`STOP_SIGNALS` (all zero: none); a plain ``True``
    counts as the first (SIGTERM). Summed over ranks, it tells every rank which signal stopped the run."""
    signum = getattr(stop, "signum", None) if not isinstance(stop, bool) else (STOP_SIGNALS[0] if stop else None)
    return [1.0 if signum == s else 0.0 for s in STOP_SIGNALS]


def _agreed_signal(counts: Any) -> int | None:
    """The signal the summed vectors of :func:`_signal_vector` agree on (the first in :data:`STOP_SIGNALS` any
    rank saw), or None."""
    for s, c in zip(STOP_SIGNALS, list(counts)):
        if float(c) > 0:
            return int(s)
    return None


def _empty_stays_local(next_creator: Callable, **kwargs: Any) -> Any:
    """A zero-size variable (e.g. ``fparam_avg`` without fparam) is made a plain local variable: the
    multi-worker strategy's broadcast of its initial value crashes TensorFlow 2.x (segfault in
    CollectiveBcastSend on an empty tensor), and there is nothing in it to keep equal across replicas."""
    import numpy as np
    from tensorflow.python.ops import resource_variable_ops

    init = kwargs.get("initial_value")
    value = init() if callable(init) else init
    if value is not None and int(np.prod(getattr(value, "shape", np.shape(value)))) == 0:
        keep = ("initial_value", "trainable", "name", "dtype", "shape")
        return resource_variable_ops.ResourceVariable(**{**{k: v for k, v in kwargs.items() if k in keep},
                                                         "initial_value": value})
    kwargs["initial_value"] = value if value is not None else init
    return next_creator(**kwargs)


def _tasks_named(text: str) -> list[int]:
    import re

    return [int(m) for m in re.findall(r"/job:worker/(?:replica:\d+/)?task:(\d+)", text)]


def _weighted_mean(ctx: Any, weight: Any) -> Callable:
    """The reduce hook of :meth:`TaskSteps.step`: the frame-weighted mean over replicas of the loss and gradients;
    RMSE metrics combine as sqrt(weighted mean of squares), i.e. the global batch's RMSE."""
    import tensorflow as tf

    def reduce(loss, metrics, grads):
        keys = sorted(metrics)
        dense = [None if g is None else tf.convert_to_tensor(g) for g in grads]
        values = [loss * weight, *[tf.square(metrics[k]) * weight for k in keys],
                  *[g * tf.cast(weight, g.dtype) for g in dense if g is not None]]
        summed = ctx.all_reduce(tf.distribute.ReduceOp.SUM, values)
        loss_r, rest = summed[0], summed[1:]
        metrics_r = {k: tf.sqrt(v) for k, v in zip(keys, rest[: len(keys)])}
        it = iter(rest[len(keys):])
        grads_r = [None if g is None else next(it) for g in dense]
        return loss_r, metrics_r, grads_r

    return reduce


# --- set-up -----------------------------------------------------------------------------------------------
_CURRENT: Distribution | None = None


def current() -> Distribution:
    """This process's distribution (``none`` until :func:`setup` chose another)."""
    return _CURRENT if _CURRENT is not None else Distribution()


def setup(training: Mapping[str, Any]) -> Distribution:
    """The process-wide distribution for ``training.distributed`` (created once: TensorFlow allows one
    multi-worker strategy per process, made before the first TensorFlow operation)."""
    global _CURRENT
    kind = str(training.get("distributed") or "none")
    if kind not in KINDS:
        raise SpecError("training.distributed", f"expected one of {', '.join(KINDS)}, got {kind!r}")
    if _CURRENT is not None and _CURRENT.kind == kind:
        return _CURRENT
    if kind == "none":
        _CURRENT = Distribution()
    elif kind == "mirrored":
        _CURRENT = _mirrored(training.get("devices"))
    else:
        _CURRENT = _multi_worker(float(training.get("collective_timeout") or DEFAULT_COLLECTIVE_TIMEOUT))
    if kind != "none":
        d = _CURRENT
        log.info("distributed: %s, %d replica(s), worker %d of %d%s", kind, d.replicas, d.worker, d.workers,
                 " (chief)" if d.is_chief else "")
    return _CURRENT


def _mirrored(devices: Sequence[str] | None) -> Distribution:
    import tensorflow as tf

    if not devices:
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return Distribution("mirrored", tf.distribute.MirroredStrategy(devices=list(devices)))


def _multi_worker(timeout: float) -> Distribution:
    import tensorflow as tf
    from tensorflow.python.eager import context

    if context.context()._context_handle is not None:  # noqa: SLF001 - TensorFlow's own "initialized" test
        raise MtbenchError("training.distributed=multi_worker must be set up before TensorFlow runs its first "
                           "operation (start the process with it, e.g. python -m mtbench.launch)")
    if not os.environ.get("TF_CONFIG") and int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1:
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver()
    else:
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    # the strategy keeps this resolver: the cluster and this worker's index are read once, for the barrier too
    addresses = list(resolver.cluster_spec().as_dict().get("worker", []))
    worker = 0 if resolver.task_type == "chief" else int(resolver.task_id or 0)
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout)
    startup_barrier(addresses, worker, timeout)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver, communication_options=options)
    return Distribution("multi_worker", strategy, worker=worker, workers=max(len(addresses), 1),
                        worker_addresses=addresses)


def startup_barrier(addresses: Sequence[str], me: int, timeout: float) -> None:
    """Wait at most ``timeout`` seconds (``training.collective_timeout``) for every other worker to start; raise
    :class:`WorkerLost` naming those that did not.

    TensorFlow's strategy constructor waits inside C++, holding the GIL, for every worker to register with the
    coordination service: no usable timeout on TF 2.21 (its ``cluster_register_timeout`` does not end the wait)
    and nothing in Python can interrupt it. So the workers meet first in Python: each one listens on its own
    cluster port (plain TCP, closed again before TensorFlow binds it) and polls the others' ports; a peer counts
    as started once something accepts there (its barrier or its TensorFlow server). Nothing is written before
    this (the run folder is made afterwards)."""
    import socket
    import threading
    import time

    others = {i: a for i, a in enumerate(addresses) if i != me}
    if not others:
        return
    host, _, port = addresses[me].rpartition(":")
    listener = socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("", int(port)))
        listener.listen(16)
        listener.settimeout(0.2)
    except OSError as exc:
        listener.close()
        raise WorkerLost(f"worker {me} cannot listen on its cluster address {addresses[me]}: {exc}") from None
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:  # wait for the peer to hang up first: the TIME_WAIT stays on its side, not on this port
                conn.settimeout(2.0)
                try:
                    conn.recv(1)
                except OSError:
                    pass

    server = threading.Thread(target=serve, name="mtbench-startup-barrier", daemon=True)
    server.start()
    deadline = time.monotonic() + timeout
    waiting = dict(others)
    try:
        while waiting:
            waiting = {i: a for i, a in waiting.items() if not _listening(a)}
            if not waiting:
                break
            if time.monotonic() > deadline:
                who = ", ".join(f"worker {i} ({a})" for i, a in sorted(waiting.items()))
                raise WorkerLost(f"{who} never joined within {timeout:g} s (training.collective_timeout); worker "
                                 f"{me} gives up before training, nothing written")
            time.sleep(0.2)
        time.sleep(1.0)  # the last peer to see this one may still be polling: keep answering a moment
    finally:
        done.set()
        server.join(timeout=5)
        listener.close()


def _listening(address: str) -> bool:
    """Whether something accepts TCP connections at ``host:port`` (a started worker's gRPC server)."""
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=2.0):
            return True
    except (OSError, ValueError):
        return False


def tf_config(addresses: Sequence[str], index: int) -> str:
    """The ``TF_CONFIG`` of worker ``index`` in a cluster of ``addresses`` (the launcher's, and the tests')."""
    return json.dumps({"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": int(index)}})


@contextlib.contextmanager
def scratch_dir(dist: Distribution) -> Iterator[str | None]:
    """A private folder for a non-chief rank's files (removed afterwards); ``None`` on the chief."""
    if dist.is_chief:
        yield None
        return
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix=f"mtbench-worker{dist.worker}-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
