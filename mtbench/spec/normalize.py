"""Canonical form of a training spec: aliases resolved, every default written out.

``normalize_spec`` is the one place that knows the *shape* of a spec: which keys exist
(from :mod:`mtbench.spec.registry`), their aliases, their value kinds, and which keys
belong to single- vs multi-task mode. It returns a new dict, so the ``input.json`` written
for a run is explicit and reproducible whatever defaults change later. Value checks
(ranges, paths, cross-references) live in :mod:`mtbench.spec.validate`.
"""

from __future__ import annotations

import contextvars
import copy
import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from mtbench.errors import SpecError
from mtbench.spec import registry as reg
from mtbench.spec.registry import OMIT, REQUIRED, Schema

SINGLE_TASK_MARKERS = ("model.fitting_net", "loss", "training.training_data", "training.validation_data",
                       "training.task_name")
MULTI_TASK_MARKERS = ("model.fitting_net_dict", "loss_dict", "learning_rate_dict", "training.data_dict",
                      "training.fitting_weight")
_DATA_ENTRY: Schema = {"training_data": reg.Option(REQUIRED, ("dict",)),
                       "validation_data": reg.Option(None, ("dict", "null"))}


def join(path: str, key: Any) -> str:
    """Dotted key path, e.g. ``join("model", "descriptor") == "model.descriptor"``."""
    return f"{path}.{key}" if path else str(key)


def kind_of(value: Any) -> str:
    """The spec kind of a value: bool, int, float, str, list, dict or null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "dict"
    return type(value).__name__


def is_multi_task(spec: Mapping[str, Any]) -> bool:
    """Whether a (raw or normalised) spec uses DeePMD-kit v2's multi-task keys."""
    return any(has_key(spec, marker) for marker in MULTI_TASK_MARKERS)


_NOTES: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("mtbench_normalize_notes", default=None)


def normalize_spec(spec: Mapping[str, Any], notes: list[str] | None = None) -> dict[str, Any]:
    """A new, canonical copy of ``spec``: aliases renamed, ``_comment`` keys dropped, defaults filled.

    Raises :class:`SpecError` for what makes the spec unreadable: unknown keys (with a
    suggestion), wrong value kinds, unknown types, single- and multi-task keys mixed,
    task names that differ between ``fitting_net_dict``, ``loss_dict`` and ``data_dict``.
    ``notes``, if given, receives one deprecation line per key alias read (e.g. DeePMD-kit
    v2's ``stop_batch`` for ``numb_steps``).
    """
    token = _NOTES.set(notes)
    try:
        return _normalize(spec)
    finally:
        _NOTES.reset(token)


def _normalize(spec: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(spec, Mapping):
        raise SpecError("spec", f"must be a mapping of DeePMD-kit input keys, got {kind_of(spec)}")
    spec = _strip_comments(spec)
    model_raw = spec.get("model")
    for key in reg.V3_MULTITASK_KEYS:
        if isinstance(model_raw, Mapping) and key in model_raw:
            raise SpecError(f"model.{key}", "DeePMD-kit v3's multi-task format is not read by mtbench; write the "
                            "v2 form (model.fitting_net_dict, loss_dict, training.data_dict, training.fitting_weight)"
                            " - see conf/README.md for the mapping")
    top = _section(spec, {}, "", extra=reg.TOP_LEVEL, ignored=reg.TOP_LEVEL_IGNORED)
    if "model" not in top:
        raise SpecError("model", "required key is missing")
    if "training" not in top:
        raise SpecError("training", "required key is missing")
    multi = _check_mode(top)

    model = _section(top["model"], reg.MODEL, "model", extra=reg.MODEL_SECTIONS)
    if "descriptor" not in model:
        raise SpecError("model.descriptor", "required key is missing")
    if "type_embedding" in model:
        model["type_embedding"] = _section(model["type_embedding"], reg.TYPE_EMBEDDING, "model.type_embedding")
        model["descriptor"] = _v2_type_embedding(model["descriptor"], model["type_embedding"])
    descriptor = _descriptor(model["descriptor"], "model.descriptor")

    out: dict[str, Any] = {}
    if multi:
        fittings = _task_dict(model, "fitting_net_dict", "model", required=True)
        if not fittings:
            raise SpecError("model.fitting_net_dict", "has no task; give at least one fitting net")
        tasks = list(fittings)
        fit_out = {t: _variant(f, "fitting", join("model.fitting_net_dict", t), reg.DEFAULT_FITTING)
                   for t, f in fittings.items()}
        out["model"] = _ordered(model, **_type_map(model), descriptor=descriptor, fitting_net_dict=fit_out)
        out["learning_rate"] = _variant(top.get("learning_rate", {}), "learning_rate", "learning_rate",
                                        reg.DEFAULT_LEARNING_RATE)
        if "learning_rate_dict" in top:
            lr_dict = _task_dict(top, "learning_rate_dict", "", required=True)
            _check_tasks(tasks, lr_dict, "learning_rate_dict", allow_missing=True)
            out["learning_rate_dict"] = {
                t: _variant(lr, "learning_rate", join("learning_rate_dict", t), reg.DEFAULT_LEARNING_RATE)
                for t, lr in lr_dict.items()}
        loss_dict = _task_dict(top, "loss_dict", "", required=False)
        if loss_dict is None:
            loss_dict = {t: {} for t in tasks}
        _check_tasks(tasks, loss_dict, "loss_dict")
        out["loss_dict"] = {t: _variant(loss_dict[t], "loss", join("loss_dict", t),
                                        reg.loss_for_fitting(fit_out[t]["type"])) for t in tasks}
        out["training"] = _training(top["training"], tasks)
    else:
        if "fitting_net" not in model:
            raise SpecError("model.fitting_net", "required key is missing (or model.fitting_net_dict for multi-task)")
        fitting = _variant(model["fitting_net"], "fitting", "model.fitting_net", reg.DEFAULT_FITTING)
        out["model"] = _ordered(model, **_type_map(model), descriptor=descriptor, fitting_net=fitting)
        out["learning_rate"] = _variant(top.get("learning_rate", {}), "learning_rate", "learning_rate",
                                        reg.DEFAULT_LEARNING_RATE)
        out["loss"] = _variant(top.get("loss", {}), "loss", "loss", reg.loss_for_fitting(fitting["type"]))
        out["training"] = _training(top["training"], None)
    for key in reg.TOP_LEVEL_IGNORED:
        if key in top:
            out[key] = top[key]
    return out


# ------------------------------------------------------------------------------------ sections


def _section(value: Any, schema: Schema, path: str, *, extra: Iterable[str] = (),
             ignored: Iterable[str] = ()) -> dict[str, Any]:
    """Canonical copy of one dict section: aliases renamed, kinds checked, 'ok' defaults filled.

    ``extra`` keys are passed through for the caller to handle; ``ignored`` keys are passed
    through as given (like schema options with status 'ignored').
    """
    where = path or "spec"
    if not isinstance(value, Mapping):
        raise SpecError(where, f"must be a mapping, got {kind_of(value)} {value!r}")
    extra, ignored = tuple(extra), tuple(ignored)
    aliases = {alias: name for name, opt in schema.items() for alias in opt.aliases}
    given: dict[str, Any] = {}
    for key, val in value.items():
        if not isinstance(key, str):
            raise SpecError(join(path, key), f"keys must be strings, got {kind_of(key)}")
        name = aliases.get(key, key)
        if name not in schema and name not in extra and name not in ignored:
            known = [*schema, *aliases, *extra, *ignored]
            raise SpecError(join(path, key), _unknown_key_message(key, known, aliases))
        if name in given:
            raise SpecError(join(path, key), f"given twice (as '{name}' and its alias)")
        notes = _NOTES.get()
        if name != key and notes is not None:
            notes.append(f"{join(path, key)}: deprecated alias (DeePMD-kit v2) of '{name}', read as "
                         f"{join(path, name)}; write '{name}'")
        given[name] = val
    out: dict[str, Any] = {}
    for name, opt in schema.items():
        key_path = join(path, name)
        if name in given:
            val = given[name]
            if opt.kinds and kind_of(val) not in opt.kinds:
                raise SpecError(key_path, f"expected {' or '.join(opt.kinds)}, got {kind_of(val)} {val!r}")
            if opt.status == "fixed" and not _same(val, opt.default):
                raise SpecError(key_path, f"not supported by mtbench: only the default {opt.default!r} is "
                                f"implemented, got {val!r}")
            out[name] = val
        elif opt.default is REQUIRED:
            raise SpecError(key_path, "required key is missing")
        elif opt.status == "ok" and opt.default is not OMIT:
            out[name] = copy.deepcopy(opt.default)
    for name in (*extra, *ignored):
        if name in given:
            out[name] = given[name]
    return out


def _unknown_key_message(key: str, known: list[str], aliases: Mapping[str, str]) -> str:
    match = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if match:
        return f"unknown key '{key}'; did you mean '{aliases.get(match[0], match[0])}'?"
    canon = sorted({aliases.get(k, k) for k in known})
    return f"unknown key '{key}'; known keys here: {', '.join(canon)}"


def _variant(value: Any, kind: str, path: str, default_type: str) -> dict[str, Any]:
    """A section whose options depend on its ``type`` (descriptor, fitting, loss, learning rate)."""
    if not isinstance(value, Mapping):
        raise SpecError(path, f"must be a mapping, got {kind_of(value)} {value!r}")
    raw_type = value.get("type", default_type)
    entry = reg.lookup(kind, raw_type) if isinstance(raw_type, str) else None
    if entry is None and kind == "descriptor" and raw_type in _TF_ONLY_DESCRIPTORS:
        raise SpecError(join(path, "type"), _TF_ONLY_DESCRIPTORS[raw_type].format(raw_type))
    if entry is None:
        names = reg.type_names(kind)
        hint = difflib.get_close_matches(str(raw_type), names, n=1, cutoff=0.6)
        more = f"did you mean '{reg.canonical_type(kind, hint[0])}'? " if hint else ""
        raise SpecError(join(path, "type"), f"unknown {reg.KINDS[kind]} type {raw_type!r}; {more}"
                        f"known: {reg.known_types(kind)}")
    body = {k: v for k, v in value.items() if k != "type"}
    if kind == "descriptor" and entry.name == "se_atten":
        body = _v2_stripped_type_embedding(body, path)
    out = {"type": entry.name, **_section(body, entry.options, path)}
    if kind_of(out.get("sel_type")) == "int":
        out["sel_type"] = [out["sel_type"]]
    return out


_SE_A_EBD_V2 = (
    "{!r} (se_e2_a with a type embedding, DeePMD-kit TF only) is not implemented: checked against DeePMD-kit "
    "3.2's TF backend, se_atten without attention layers (type 'se_atten', attn_layer 0, tebd_input_mode 'strip', "
    "smooth_type_embedding false, type_one_side as given, sel = the sum of the per-type sel) gives the same "
    "energies and forces only with set_davg_zero true; with a nonzero davg the padding slots of the neighbour list "
    "differ (DeePMD-kit TF gives them the zero padding type embedding, se_atten the first atom's type), so "
    "mtbench does not substitute it silently; write that se_atten descriptor (with set_davg_zero true for the "
    "same numbers)")
_SE_A_EBD = (
    "{!r} (DeePMD-kit TF's older se_a with type embedding channels type_nchanl/type_nlayer) is not implemented "
    "and is a different model from se_a_ebd_v2; use 'se_atten' with attn_layer 0 (se_e2_a with a type "
    "embedding) or 'se_e2_a'")
_TF_ONLY_DESCRIPTORS = {"se_a_ebd_v2": _SE_A_EBD_V2, "se_a_tpe_v2": _SE_A_EBD_V2, "se_a_tpe": _SE_A_EBD,
                        "se_a_ebd": _SE_A_EBD}
"""DeePMD-kit v2 descriptor types mtbench refuses with a pointer to what to write instead."""


def _type_map(model: Mapping[str, Any]) -> dict[str, Any]:
    """``{"type_map": ...}`` when given; absent, it is resolved from the data (mtbench.spec.from_data)."""
    return {"type_map": model["type_map"]} if "type_map" in model else {}


def _v2_type_embedding(descriptor: Any, tebd: Mapping[str, Any]) -> Any:
    """DeePMD-kit v2's model-level ``type_embedding`` sizes se_atten's type embedding (v3: ``tebd_dim``)."""
    if not isinstance(descriptor, Mapping) or descriptor.get("type") not in ("se_atten", "se_atten_v2", "dpa1"):
        return descriptor
    neuron = list(tebd.get("neuron") or [8])
    dim = int(neuron[-1])
    if "tebd_dim" in descriptor and int(descriptor["tebd_dim"]) != dim:
        raise SpecError("model.descriptor.tebd_dim", f"is {descriptor['tebd_dim']} but model.type_embedding.neuron "
                        f"ends with {dim}; give one of them")
    return {**descriptor, "tebd_dim": dim}


def _v2_stripped_type_embedding(body: dict[str, Any], path: str) -> dict[str, Any]:
    """Translate DeePMD-kit v2's ``stripped_type_embedding`` into v3's ``tebd_input_mode``."""
    if "stripped_type_embedding" not in body:
        return body
    body = dict(body)
    stripped = body.pop("stripped_type_embedding")
    if stripped is None:
        return body
    if not isinstance(stripped, bool):
        raise SpecError(join(path, "stripped_type_embedding"), f"expected bool or null, got {stripped!r}")
    mode = "strip" if stripped else "concat"
    if body.get("tebd_input_mode", mode) != mode:
        raise SpecError(join(path, "stripped_type_embedding"),
                        f"contradicts tebd_input_mode {body['tebd_input_mode']!r} (stripped means 'strip')")
    body["tebd_input_mode"] = mode
    return body


def _descriptor(value: Any, path: str) -> dict[str, Any]:
    desc = _variant(value, "descriptor", path, "")
    if desc["type"] == "hybrid":
        subs = desc["list"]
        if not subs:
            raise SpecError(join(path, "list"), "hybrid needs at least one sub-descriptor")
        out = []
        for i, sub in enumerate(subs):
            sub_path = f"{path}.list[{i}]"
            if isinstance(sub, Mapping) and reg.canonical_type("descriptor", str(sub.get("type"))) == "hybrid":
                raise SpecError(join(sub_path, "type"), "hybrid descriptors cannot be nested")
            out.append(_variant(sub, "descriptor", sub_path, ""))
        desc["list"] = out
    return desc


def _training(value: Any, tasks: list[str] | None) -> dict[str, Any]:
    """The ``training`` section; ``tasks`` is None in single-task mode."""
    schema = reg.TRAINING if tasks is not None else {**reg.SINGLE_TASK_TRAINING, **reg.TRAINING}
    train = _section(value, schema, "training", extra=reg.TRAINING_SECTIONS)
    train["sampling"] = _section(train["sampling"], reg.SAMPLING, "training.sampling")
    train["diagnostics"] = _section(train["diagnostics"], reg.DIAGNOSTICS, "training.diagnostics")
    head: dict[str, Any] = {}
    if tasks is None:
        if "training_data" not in train:
            raise SpecError("training.training_data", "required key is missing")
        head["training_data"] = _section(train.pop("training_data"), reg.TRAINING_DATA, "training.training_data")
        val = train.pop("validation_data", None)
        head["validation_data"] = (None if val is None else
                                   _section(val, reg.VALIDATION_DATA, "training.validation_data"))
    else:
        data = _task_dict(train, "data_dict", "training", required=True)
        _check_tasks(tasks, data, "training.data_dict")
        head["data_dict"] = {t: _data_entry(data[t], join("training.data_dict", t)) for t in tasks}
        head["fitting_weight"] = _fitting_weight(train.pop("fitting_weight", None), tasks)
        train.pop("data_dict")
    return {**head, **train}


def _data_entry(value: Any, path: str) -> dict[str, Any]:
    entry = _section(value, _DATA_ENTRY, path)
    entry["training_data"] = _section(entry["training_data"], reg.TRAINING_DATA, join(path, "training_data"))
    if entry["validation_data"] is not None:
        entry["validation_data"] = _section(entry["validation_data"], reg.VALIDATION_DATA,
                                            join(path, "validation_data"))
    return entry


def _fitting_weight(value: Any, tasks: list[str]) -> dict[str, Any]:
    """Weights in task order; absent = equal weights, a task left out = weight 0 (never drawn)."""
    if value is None:
        return {t: 1.0 for t in tasks}
    if not isinstance(value, Mapping):
        raise SpecError("training.fitting_weight", f"must be a mapping task -> weight, got {kind_of(value)}")
    for key in value:
        if key not in tasks:
            raise SpecError(join("training.fitting_weight", key),
                            f"no task '{key}' in model.fitting_net_dict (tasks: {', '.join(tasks)})")
    return {t: value.get(t, 0.0) for t in tasks}


# ---------------------------------------------------------------------------------- multi-task


def _check_mode(top: Mapping[str, Any]) -> bool:
    single = [k for k in SINGLE_TASK_MARKERS if has_key(top, k)]
    multi = [k for k in MULTI_TASK_MARKERS if has_key(top, k)]
    if single and multi:
        raise SpecError(single[0], f"single-task key mixed with multi-task key(s) {', '.join(multi)}; use "
                        "model.fitting_net_dict + loss_dict + training.data_dict for multi-task, or "
                        "model.fitting_net + loss + training.training_data for single-task")
    return bool(multi)


def _task_dict(parent: Mapping[str, Any], key: str, path: str, *, required: bool) -> dict[str, Any] | None:
    full = join(path, key)
    if key not in parent:
        if required:
            raise SpecError(full, "required key is missing in multi-task mode")
        return None
    value = parent[key]
    if not isinstance(value, Mapping):
        raise SpecError(full, f"must be a mapping task -> settings, got {kind_of(value)}")
    for task in value:
        if not isinstance(task, str):
            raise SpecError(join(full, task), "task names must be strings")
    return dict(value)


def _check_tasks(tasks: list[str], other: Mapping[str, Any], name: str, *, allow_missing: bool = False) -> None:
    """``other`` must hold the tasks of ``model.fitting_net_dict``, no more (and no fewer)."""
    for task in other:
        if task not in tasks:
            raise SpecError(join(name, task), f"{name} has task '{task}' that model.fitting_net_dict lacks "
                            f"(tasks: {', '.join(tasks)})")
    if not allow_missing:
        missing = [t for t in tasks if t not in other]
        if missing:
            raise SpecError(name, f"{name} lacks task(s) {', '.join(repr(t) for t in missing)} that "
                            "model.fitting_net_dict has")


# ------------------------------------------------------------------------------------- helpers


def has_key(spec: Mapping[str, Any], dotted: str) -> bool:
    """Whether the nested key ``a.b.c`` is present (whatever its value)."""
    node: Any = spec
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _ordered(section: Mapping[str, Any], **first: Any) -> dict[str, Any]:
    out = dict(first)
    for key, val in section.items():
        if key not in out and key not in reg.MODEL_SECTIONS:
            out[key] = val
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same kind (ints and floats compare as numbers; True is not 1)."""
    numbers = ("int", "float")
    if kind_of(a) in numbers and kind_of(b) in numbers:
        return a == b
    return kind_of(a) == kind_of(b) and a == b


def _strip_comments(value: Any) -> Any:
    """Deep copy without keys starting with '_' (DeePMD-style comments like ``_comment``)."""
    if isinstance(value, Mapping):
        return {k: _strip_comments(v) for k, v in value.items() if not (isinstance(k, str) and k.startswith("_"))}
    if isinstance(value, (list, tuple)):
        return [_strip_comments(v) for v in value]
    return copy.deepcopy(value)
