"""What a restart may change: the training schedule, not the model.

A checkpoint holds the weights of one model; restarting it under a spec that describes another model (another
descriptor, fitting net, type map or sharing) would train the checkpoint's model while ``input.json`` says something
else. :func:`check_restart` refuses that, naming the first differing key, and lists the allowed changes
(``numb_steps``, learning rate, disp/save frequencies, data paths, ``fitting_weight``...) for the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mtbench.errors import SpecError

IGNORED_KEYS = frozenset({"seed", "data_stat_nbatch", "restart", "init_frz_model"})
"""Keys whose change does not change a restarted model (seeds only initialise; statistics come from the checkpoint)."""

_MISSING = object()


def _diffs(old: Any, new: Any, path: str) -> list[tuple[str, Any, Any]]:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            if key in IGNORED_KEYS:
                continue
            out += _diffs(old.get(key, _MISSING), new.get(key, _MISSING), f"{path}.{key}" if path else str(key))
        return out
    return [] if old == new else [(path, old, new)]


def _show(value: Any) -> str:
    return "(absent)" if value is _MISSING else repr(value)


def check_restart(saved: Mapping[str, Any], spec: Mapping[str, Any], checkpoint: str) -> list[str]:
    """Raise :class:`SpecError` if ``spec``'s model differs from the checkpoint's ``saved`` spec; else return one line
    per allowed change (outside ``model``) for the log."""
    model_diffs = _diffs(saved.get("model", {}), spec.get("model", {}), "model")
    if model_diffs:
        key, old, new = model_diffs[0]
        raise SpecError(key, f"the checkpoint {checkpoint} was trained with {_show(old)}, the spec says {_show(new)}; "
                             "a restart cannot change the model (start a new run, or use init_frz_model)")
    rest = {k: v for k, v in saved.items() if k != "model"}
    now = {k: v for k, v in spec.items() if k != "model"}
    return [f"restart changes {key}: {_show(old)} -> {_show(new)}" for key, old, new in _diffs(rest, now, "")]
