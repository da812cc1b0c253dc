"""Metric names sent to the tracking backend.

These names are a public interface: users build dashboards and comparison reports on them,
so every producer (trainer, evaluator) builds names here and nowhere else. Layout::

    train/<task>/<metric>            DeePMD lcurve quantity on the training batch
    val/<task>/<metric>              the same on the validation data
    test/<head>/<metric>             ``python -m mtbench.test`` on a frozen head (per run)
    sampling/<task>/count            how often the task was drawn so far
    sampling/<task>/fraction         count / total steps so far
    sampling/<task>/probability      the probability the sampler was asked for (step 0)
    best/<task>/<metric>             the best validation value, on the metric that ranks the task (end of run)
    final/<task>/<m>                 dp-test metric <m> of the last checkpoint on the whole validation data
    final_best/<task>/<m>            the same for the task's best checkpoint (mtbench.train.final_eval)
    lr                               learning rate
    time/step_s                      wall time per training step (seconds)
    distributed/replicas             data-parallel replicas of a distributed run (``training.distributed``)
    data/<task>/max_neighbors/<type> largest neighbour count seen for an atom type
    data/<task>/dropped_frames       training frames dropped at load time (``drop_bad_frames``)
    train/<task>/skipped_steps       steps skipped for a non-finite loss/gradient (``on_nonfinite: skip``)
    grad/<task>/norm                 global gradient norm of the task's loss
    grad/cos/<taskA>__<taskB>        cosine between two tasks' gradients on shared variables

``<metric>`` follows DeePMD-kit's lcurve column names (without the ``_trn``/``_val`` suffix).
"""

from __future__ import annotations

import re
from typing import NamedTuple

# Run tags mtbench sets (the UI's runs table and filters use them too).
TASKS_TAG = "mtbench.tasks"
RESUMED_TAG = "mtbench.resumed"              # a restart continued this run: at which step, by which pid
STOPPED_TAG = "mtbench.stopped"              # a signal stopped it with a checkpoint (status KILLED)
STALE_TAG = "mtbench.stale"                  # its process was found gone while it was RUNNING (status KILLED)
ERROR_TAG = "mtbench.error"                  # the exception that failed it (status FAILED)
PREVIOUS_ENDS_TAG = "mtbench.previous_ends"  # what earlier processes' ends said, once a restart continues it
#: the tags that say how a process ended: a resumed run keeps them only under PREVIOUS_ENDS_TAG
END_TAGS = (STOPPED_TAG, STALE_TAG, ERROR_TAG)

TRAIN = "train"
VAL = "val"
TEST = "test"
SAMPLING = "sampling"
BEST = "best"
FINAL = "final"
FINAL_BEST = "final_best"
DATA = "data"
GRAD = "grad"

LR = "lr"
STEP_TIME = "time/step_s"
#: wall-clock metrics: two runs of one seed differ in them, so a resumed run does not compare them
WALL_CLOCK = frozenset({STEP_TIME})
DISTRIBUTED_REPLICAS = "distributed/replicas"

#: lcurve quantities of an energy task (per-atom energy ``rmse_e``, forces, virial, atomic energy,
#: prefactor-weighted forces) and of a tensor (dipole / polar) task (local and global tensors).
ENERGY_METRICS: tuple[str, ...] = ("rmse", "rmse_e", "rmse_f", "rmse_v", "rmse_ae", "rmse_pf")
TENSOR_METRICS: tuple[str, ...] = ("rmse", "rmse_lc", "rmse_gl")

_SPLITS = {"trn": TRAIN, "val": VAL}
# Characters MLflow accepts in metric names on every platform, minus "/" (our separator).
_COMPONENT = re.compile(r"^[\w.\- ]+$")


def _component(value: str, what: str) -> str:
    """Return ``value`` if it can be one path component of a metric name, else raise."""
    value = str(value)
    if not _COMPONENT.match(value) or value.strip(" .") == "":
        raise ValueError(
            f"{what} {value!r} cannot be part of a metric name: use letters, digits, '_', '-', '.'"
        )
    return value


def _per_task(group: str, task: str, metric: str, what: str = "task name") -> str:
    """``<group>/<task>/<metric>``: the shape of every per-task metric name (``what``: the task's role, for the
    error)."""
    return f"{group}/{_component(task, what)}/{_component(metric, 'metric')}"


def train_metric(task: str, metric: str) -> str:
    """``train/<task>/<metric>``."""
    return _per_task(TRAIN, task, metric)


def val_metric(task: str, metric: str) -> str:
    """``val/<task>/<metric>``."""
    return _per_task(VAL, task, metric)


def metric_on_test(head: str, metric: str) -> str:
    """``test/<head>/<metric>`` (not named ``test_*``: pytest would collect it on import)."""
    return _per_task(TEST, head, metric, what="head name")


def sampling_count(task: str) -> str:
    """``sampling/<task>/count``."""
    return _per_task(SAMPLING, task, "count")


def sampling_fraction(task: str) -> str:
    """``sampling/<task>/fraction``."""
    return _per_task(SAMPLING, task, "fraction")


def sampling_probability(task: str) -> str:
    """``sampling/<task>/probability``."""
    return _per_task(SAMPLING, task, "probability")


def best_metric(task: str, metric: str) -> str:
    """``best/<task>/<metric>``."""
    return _per_task(BEST, task, metric)


def final_metric(task: str, metric: str) -> str:
    """``final/<task>/<m>``: the full validation of the last checkpoint (dp-test metric keys)."""
    return _per_task(FINAL, task, metric)


def final_best_metric(task: str, metric: str) -> str:
    """``final_best/<task>/<m>``: the full validation of the task's best checkpoint (dp-test metric keys)."""
    return _per_task(FINAL_BEST, task, metric)


def max_neighbors(task: str, atom_type: str) -> str:
    """``data/<task>/max_neighbors/<type>``."""
    task, atom_type = _component(task, "task name"), _component(atom_type, "atom type")
    return f"{DATA}/{task}/max_neighbors/{atom_type}"


def dropped_frames(task: str) -> str:
    """``data/<task>/dropped_frames``."""
    return _per_task(DATA, task, "dropped_frames")


def skipped_steps(task: str) -> str:
    """``train/<task>/skipped_steps``."""
    return train_metric(task, "skipped_steps")


def grad_norm(task: str) -> str:
    """``grad/<task>/norm``."""
    return _per_task(GRAD, task, "norm")


def grad_cos(task_a: str, task_b: str) -> str:
    """``grad/cos/<taskA>__<taskB>`` with the pair sorted: the cosine is symmetric, and one
    name per pair keeps dashboards stable whatever order the caller iterates in."""
    a, b = sorted((_component(task_a, "task name"), _component(task_b, "task name")))
    return f"{GRAD}/cos/{a}__{b}"


def from_lcurve_column(task: str, column: str) -> str:
    """Map a DeePMD lcurve column (``rmse_e_trn``, ``rmse_val``, ``lr``) to a metric name."""
    if column == "lr":
        return LR
    base, _, split = column.rpartition("_")
    if not base or split not in _SPLITS:
        raise ValueError(f"lcurve column {column!r} is not '<metric>_trn', '<metric>_val' or 'lr'")
    return _per_task(_SPLITS[split], task, base)


class MetricName(NamedTuple):
    """A parsed per-task metric name: ``group`` is train/val/test/sampling/best/final/final_best/data/grad."""

    group: str
    task: str
    metric: str


def parse_metric_name(name: str) -> MetricName | None:
    """Split ``<group>/<task>/<metric...>`` into its parts (group: train, val, test, sampling,
    best, data, grad); ``None`` for global names (``lr``, ``time/step_s``, ``grad/cos/...``)."""
    parts = name.split("/", 2)
    if len(parts) != 3 or parts[0] not in (TRAIN, VAL, TEST, SAMPLING, BEST, FINAL, FINAL_BEST, DATA, GRAD):
        return None
    if parts[0] == GRAD and parts[1] == "cos":
        return None
    return MetricName(*parts)
