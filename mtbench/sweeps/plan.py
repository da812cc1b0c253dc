"""A sweep's plan and the names its parts share.

The Hydra callback (:mod:`mtbench.sweeps.callback`) plans a sweep and tags its runs with these
names; the readers (:mod:`mtbench.sweeps.folders`, :mod:`mtbench.sweeps.mlflow_reader`) read them
back. Parsing of Hydra overrides lives here too: which keys a sweep varies, each job's values.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# The store the parent lives in (the jobs use it too); owned by the store, re-exported for the callback.
from mtbench.tracking.names import ERROR_TAG  # noqa: F401
from mtbench.tracking.store import ENV_TRACKING_URI  # noqa: F401

log = logging.getLogger("mtbench.tracking")

ENV_PARENT = "MTBENCH_PARENT_RUN_ID"  # read by mtbench.cli.hydra_app (parent_run_id)
ENV_SWEEP_KEYS = "MTBENCH_SWEEP_KEYS"  # swept override keys, comma-separated

RUN_TYPE_TAG = "mtbench.run_type"
SWEEP_DIR_TAG = "mtbench.sweep_dir"
JOB_TAG = "sweep.job"
KEYS_TAG = "sweep.keys"

# A swept seed is never a setting: its jobs are replicates of the setting the other keys make.
REPLICATE_KEY = "training.seed"
_SECTIONS = ("training.", "model.")  # prefixes that add nothing to a key's meaning in a name or a label


def display_key(key: str) -> str:
    """A swept key as people read it: ``training.fitting_weight.water_ener`` -> ``fitting_weight.water_ener``,
    ``training.seed`` -> ``seed``; other keys (``descriptor``, ``learning_rate.start_lr``) as they are."""
    for prefix in _SECTIONS:
        if key.startswith(prefix) and len(key) > len(prefix):
            return key[len(prefix):]
    return key


def setting_label(values: Mapping[str, str]) -> str:
    """``fitting_weight.water_ener=4, seed=2``: a job's (or a setting's) swept values, for run names and legends."""
    return ", ".join(f"{display_key(k)}={v}" for k, v in values.items())


def sweep_label(name: str | None, keys: Sequence[str]) -> str:
    """What a sweep is called in its parent run, its report titles and plots: ``sweep.name`` when set, else what
    it sweeps (``fitting_weight.water_dipole, seed``), else ``sweep``. The live report (from the parent run's
    ``sweep.name`` tag) and a report rebuilt from the folders both use it."""
    return str(name or "") or ", ".join(display_key(k) for k in keys) or "sweep"


def job_run_name(num: Any, overrides: Sequence[str], keys: Sequence[str]) -> str:
    """A sweep job's MLflow run name: what it varies (``fitting_weight.water_ener=4, seed=2``), ``job<num>`` when
    the swept keys are unknown."""
    return setting_label(swept_values(overrides, keys)) or f"job{num}"


def job_note(num: Any, overrides: Sequence[str], keys: Sequence[str]) -> str:
    """A sweep job's description (``mlflow.note.content``): its swept values and every override."""
    values = swept_values(overrides, keys)
    lines = [f"**Sweep job {num}**" + (f": {setting_label(values)}" if values else ""), ""]
    lines += [f"- `{display_key(k)}` = {v}" for k, v in values.items()]
    lines.append(f"- overrides: `{' '.join(overrides) or '(none)'}`")
    return "\n".join(lines) + "\n"


def replicate_seeds(config: Any) -> list[int]:
    """The seeds ``sweep.replicates=N`` asks for: ``training.seed`` (default 1) and the N-1 after it; [] when the
    sweep has no replicates (or N <= 1)."""
    sweep = config.get("sweep") if "sweep" in config else None
    n = int((sweep or {}).get("replicates") or 0) if sweep is not None else 0
    if n <= 1:
        return []
    base = config.get("training", {}).get("seed") if "training" in config else None
    base = 1 if base is None else int(base)
    return list(range(base, base + n))


def add_replicates(config: Any) -> list[int]:
    """Expand ``sweep.replicates=N`` into the swept override ``training.seed=s1,...,sN`` (Hydra's sweeper reads
    ``hydra.overrides.task`` after the multirun-start callbacks). A seed the user sweeps already wins. Returns the
    seeds added."""
    from omegaconf import open_dict, read_write

    seeds = replicate_seeds(config)
    if not seeds:
        return []
    if REPLICATE_KEY in plan_sweep(config).keys:
        log.warning("sweep.replicates ignored: training.seed is swept already (its values are the replicates)")
        return []
    with read_write(config.hydra), open_dict(config.hydra):
        config.hydra.overrides.task = [o for o in config.hydra.overrides.task
                                       if not str(o).lstrip("+~").startswith(f"{REPLICATE_KEY}=")]
        config.hydra.overrides.task.append(f"{REPLICATE_KEY}={','.join(map(str, seeds))}")
    return seeds


@dataclass
class SweepPlan:
    """What the launching process knows about a sweep before it starts."""

    keys: list[str]  # swept override keys, e.g. ["training.fitting_weight.water_dipole"]
    params: dict[str, str]  # key -> sweep text, e.g. {"...water_dipole": "1,5,20"}
    fixed: list[str] = field(default_factory=list)  # non-swept task overrides ("debug=fast")
    jobs: list[list[str]] | None = None  # the grid, in job order (None: the sweeper decides)

    def grid_text(self) -> str:
        if self.jobs is None:
            return "(chosen by the sweeper)"
        return "\n".join(f"#{i}: {' '.join(self.swept_of(job)) or '(no swept keys)'}"
                         for i, job in enumerate(self.jobs))

    def swept_of(self, job: Sequence[str]) -> list[str]:
        values = swept_values(job, self.keys)
        return [f"{k}={v}" for k, v in values.items()]


def override_key(override: Any) -> str:
    """``key`` or ``group@package``, without ``+``/``++``/``~``."""
    key = str(override.key_or_group)
    return f"{key}@{override.package}" if override.package else key


def plan_sweep(config: Any) -> SweepPlan:
    """The swept keys and (for Hydra's basic sweeper) the job grid of a multirun config.

    Mirrors ``BasicSweeper.sweep``: ``hydra.sweeper.params`` first, then the command line's task
    overrides, expanded with ``BasicSweeper.split_arguments``.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    hydra_cfg = config.hydra
    params = dict(hydra_cfg.sweeper.get("params") or {})
    lines = [f"{k}={v}" for k, v in params.items()] + [str(x) for x in hydra_cfg.overrides.task]
    overrides = OverridesParser.create().parse_overrides(lines)
    keys: list[str] = []
    sweep_text: dict[str, str] = {}
    fixed: list[str] = []
    for o in overrides:
        key = override_key(o)
        if o.is_sweep_override():
            if key not in keys:
                keys.append(key)
            sweep_text[key] = (o.input_line or "").split("=", 1)[-1]
        else:
            fixed.append(o.input_line)
    jobs = None
    target = str(hydra_cfg.sweeper.get("_target_", ""))
    if target.endswith("BasicSweeper"):
        try:
            jobs = BasicSweeper.split_arguments(overrides, None)[0]
        except Exception:  # noqa: BLE001 - a range/interval sweep the basic sweeper rejects later
            jobs = None
    return SweepPlan(keys=keys, params=sweep_text, fixed=fixed, jobs=jobs)


def swept_values(job_overrides: Sequence[str], keys: Sequence[str]) -> dict[str, str]:
    """``{key: value}`` of one job's overrides, restricted to ``keys`` (in that order)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    found: dict[str, str] = {}
    for o in OverridesParser.create().parse_overrides([str(x) for x in job_overrides]):
        found[override_key(o)] = o.get_value_element_as_str()
    return {k: found[k] for k in keys if k in found}


def quote_override_value(value: str) -> str:
    """A Hydra override value that stays one literal string (URIs, paths, passwords).

    Hydra's quoted strings: backslashes escape only before a quote or at the end, quotes are
    escaped with a backslash, and ``\\${`` keeps OmegaConf from reading an interpolation.
    """
    out = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, value)
    out = out.replace("'", "\\'").replace("${", "\\${")
    return f"'{out}'"


def inject_job_env(config: Any, env: Mapping[str, str]) -> None:
    """Make every job of this multirun see ``env`` (Hydra sets ``hydra.job.env_set`` around the
    task function in whatever process runs it)."""
    from omegaconf import open_dict, read_write

    with read_write(config.hydra), open_dict(config.hydra):
        for name, value in env.items():
            config.hydra.overrides.hydra.append(
                f"++hydra.job.env_set.{name}={quote_override_value(str(value))}")
            config.hydra.job.env_set[name] = str(value).replace("${", "\\${")


def varying_keys(overrides_by_job: Sequence[Sequence[str]]) -> list[str]:
    """Override keys whose value differs between jobs (when the sweep's own record is gone)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    values: dict[str, set[str]] = {}
    order: list[str] = []
    for job in overrides_by_job:
        seen = set()
        for o in parser.parse_overrides(list(job)):
            k = override_key(o)
            seen.add(k)
            if k not in values:
                values[k] = set()
                order.append(k)
            values[k].add(o.get_value_element_as_str())
        for k in order:
            if k not in seen:
                values[k].add("(default)")
    return [k for k in order if len(values[k]) > 1]
