"""Checks of a training spec's values, run before any training starts.

A spec that passes :func:`validate_spec` can be built and trained: numbers are in range,
types fit together (loss <-> fitting, fitting <-> descriptor), tasks line up across the
multi-task dicts, shared layers have equal shapes and data folders exist. Every error is
one :class:`SpecError` line naming the key path; things that are legal but probably not
meant (a task that will never be trained, ignored DeePMD-kit keys) come back as warnings.

Why one module past 500 lines: the checks read one another's results (a task's loss kind decides which fitting
keys and data labels to check), so they share one walk over the spec; split by section they would each re-derive it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mtbench.errors import SpecError
from mtbench.spec import registry as reg
from mtbench.spec.normalize import is_multi_task, join, kind_of, normalize_spec
from mtbench.spec.paths import check_systems, resolve_system_path, system_list

TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def validate_spec(spec: Mapping[str, Any], *, base_dir: Path | None = None, check_paths: bool = True) -> list[str]:
    """Raise :class:`SpecError` for the first error in ``spec``; return the warnings.

    ``spec`` may be raw or normalised (it is normalised here again, which is idempotent).
    Relative data paths resolve against ``base_dir`` (the input file's folder; the current
    directory if None). ``check_paths=False`` skips the file-system checks.
    """
    left_out = _left_out_tasks(spec)
    warnings = [f"training.fitting_weight: task {t!r} is absent, so it will never be trained (DeePMD-kit drops "
                "it silently); give it a positive weight to train it" for t in left_out]
    norm = normalize_spec(spec)
    # no type_map: types by data index, counted by mtbench.spec.from_data; until then per-type counts are not checked
    ntypes = _type_map(norm["model"]["type_map"]) if "type_map" in norm["model"] else None
    descriptor = norm["model"]["descriptor"]
    _descriptor(descriptor, "model.descriptor", ntypes)
    multi = is_multi_task(norm)
    train = norm["training"]
    if multi:
        fit_root, loss_root = "model.fitting_net_dict", "loss_dict"
        tasks = list(norm["model"]["fitting_net_dict"])
        for task in tasks:
            if not TASK_NAME.match(task):
                raise SpecError(join(fit_root, task), "task names may hold letters, digits, '_', '.', '-' and must "
                                "start with a letter or digit (they name files and metrics)")
            fit_path = join(fit_root, task)
            fitting = norm["model"]["fitting_net_dict"][task]
            _fitting(fitting, fit_path, descriptor, ntypes)
            _loss(norm["loss_dict"][task], join(loss_root, task), fitting, fit_path)
            data_path = join("training.data_dict", task)
            _data(train["data_dict"][task]["training_data"], join(data_path, "training_data"), base_dir,
                  check_paths, descriptor)
            if train["data_dict"][task]["validation_data"] is not None:
                _data(train["data_dict"][task]["validation_data"], join(data_path, "validation_data"), base_dir,
                      check_paths, descriptor)
        for task, lr in norm.get("learning_rate_dict", {}).items():
            warnings += _learning_rate(lr, join("learning_rate_dict", task))
        warnings += _fitting_weight(train["fitting_weight"], left_out)
        _layer_sharing({t: norm["model"]["fitting_net_dict"][t] for t in tasks}, fit_root)
    else:
        if not TASK_NAME.match(train["task_name"]):
            raise SpecError("training.task_name", f"{train['task_name']!r} is not a valid task name (letters, digits,"
                            " '_', '.', '-'; it names files and metrics)")
        fitting = norm["model"]["fitting_net"]
        _fitting(fitting, "model.fitting_net", descriptor, ntypes)
        _loss(norm["loss"], "loss", fitting, "model.fitting_net")
        _data(train["training_data"], "training.training_data", base_dir, check_paths, descriptor)
        if train["validation_data"] is not None:
            _data(train["validation_data"], "training.validation_data", base_dir, check_paths, descriptor)
        _layer_sharing({train["task_name"]: fitting}, "model.fitting_net", single=True)
    warnings += _learning_rate(norm["learning_rate"], "learning_rate")
    _model_stat(norm["model"])
    _training(train, base_dir, check_paths)
    ignored = _ignored_keys(norm)
    if ignored:
        warnings.append(f"ignored by mtbench (DeePMD-kit keys it does not use): {', '.join(ignored)}")
    return warnings


# -------------------------------------------------------------------------------------- model


def _type_map(type_map: Sequence[Any]) -> int:
    if not type_map:
        raise SpecError("model.type_map", "needs at least one element name")
    seen: set[str] = set()
    for i, name in enumerate(type_map):
        if not isinstance(name, str) or not name:
            raise SpecError(f"model.type_map[{i}]", f"expected an element name, got {name!r}")
        if name in seen:
            raise SpecError(f"model.type_map[{i}]", f"duplicate type {name!r}")
        seen.add(name)
    return len(type_map)


def _descriptor(desc: Mapping[str, Any], path: str, ntypes: int | None) -> None:
    if desc["type"] == "hybrid":
        for i, sub in enumerate(desc["list"]):
            _descriptor(sub, f"{path}.list[{i}]", ntypes)
        return
    entry = reg.DESCRIPTORS[desc["type"]]
    _positive(desc["rcut"], join(path, "rcut"))
    _at_least(desc["rcut_smth"], 0, join(path, "rcut_smth"))
    if desc["rcut"] <= desc["rcut_smth"]:
        raise SpecError(join(path, "rcut"), f"rcut ({desc['rcut']}) must be larger than rcut_smth "
                        f"({desc['rcut_smth']})")
    _sel(desc["sel"], join(path, "sel"), ntypes, entry.mixed_types)
    _widths(desc["neuron"], join(path, "neuron"), allow_empty=False)
    if "axis_neuron" in desc and not 1 <= desc["axis_neuron"] <= desc["neuron"][-1]:
        raise SpecError(join(path, "axis_neuron"), f"must be between 1 and neuron[-1] ({desc['neuron'][-1]}), "
                        f"got {desc['axis_neuron']}")
    _activation(desc["activation_function"], join(path, "activation_function"))
    _precision(desc["precision"], join(path, "precision"))
    _seed(desc["seed"], join(path, "seed"))
    _at_least(desc["env_protection"], 0, join(path, "env_protection"))
    _type_pairs(desc["exclude_types"], join(path, "exclude_types"), ntypes)
    if entry.mixed_types:
        _at_least(desc["attn"], 1, join(path, "attn"))
        _at_least(desc["attn_layer"], 0, join(path, "attn_layer"))
        _at_least(desc["tebd_dim"], 1, join(path, "tebd_dim"))
        if desc["ln_eps"] is not None:
            _positive(desc["ln_eps"], join(path, "ln_eps"))
        if desc.get("tebd_input_mode", "strip") not in ("concat", "strip"):
            raise SpecError(join(path, "tebd_input_mode"), f"expected 'concat' or 'strip', got "
                            f"{desc['tebd_input_mode']!r}")


def _sel(sel: Any, path: str, ntypes: int | None, mixed_types: bool) -> None:
    if isinstance(sel, str):
        head, _, factor = sel.partition(":")
        ok = head == "auto"
        if ok and factor:
            try:
                ok = float(factor) > 0
            except ValueError:
                ok = False
        if not ok:
            raise SpecError(path, f"expected a list of ints or 'auto' / 'auto:<factor>', got {sel!r}")
        return
    if kind_of(sel) == "int":
        if not mixed_types:
            count = f" ({ntypes} types)" if ntypes is not None else ""
            raise SpecError(path, f"expected one int per type{count} for this descriptor, got {sel}")
        sel = [sel]
    elif not mixed_types and ntypes is not None and len(sel) != ntypes:
        raise SpecError(path, f"needs one entry per type in model.type_map ({ntypes}), got {len(sel)}")
    for i, n in enumerate(sel):
        if kind_of(n) != "int":
            raise SpecError(f"{path}[{i}]", f"expected an int, got {n!r}")
        if n < 0:
            raise SpecError(f"{path}[{i}]", f"must be >= 0, got {n}")
    if sum(sel) == 0:
        raise SpecError(path, "all neighbour slots are 0: the descriptor would see no neighbour")


def _model_stat(model: Mapping[str, Any]) -> None:
    _at_least(model["data_stat_nbatch"], 1, "model.data_stat_nbatch")
    _positive(model["data_stat_protect"], "model.data_stat_protect")


# ------------------------------------------------------------------------------------ fitting


def _fitting(fit: Mapping[str, Any], path: str, descriptor: Mapping[str, Any], ntypes: int | None) -> None:
    _widths(fit["neuron"], join(path, "neuron"), allow_empty=True)
    _at_least(fit["numb_fparam"], 0, join(path, "numb_fparam"))
    _at_least(fit["numb_aparam"], 0, join(path, "numb_aparam"))
    _activation(fit["activation_function"], join(path, "activation_function"))
    _precision(fit["precision"], join(path, "precision"))
    _seed(fit["seed"], join(path, "seed"))
    nlayers = len(fit["neuron"]) + 1
    if fit["type"] == "ener":
        trainable = fit["trainable"]
        if isinstance(trainable, list) and (len(trainable) != nlayers or
                                            any(kind_of(t) != "bool" for t in trainable)):
            raise SpecError(join(path, "trainable"), f"expected a bool or {nlayers} bools (len(neuron)+1), "
                            f"got {trainable!r}")
        atom_ener = fit["atom_ener"]
        too_long = ntypes is not None and len(atom_ener) > ntypes
        if too_long or any(kind_of(e) not in ("int", "float", "null") for e in atom_ener):
            raise SpecError(join(path, "atom_ener"), f"expected at most one number or null per type, got "
                            f"{atom_ener!r}")
        layer_name = fit["layer_name"]
        if layer_name is not None:
            if len(layer_name) != nlayers:
                raise SpecError(join(path, "layer_name"), f"needs len(neuron)+1 = {nlayers} entries (hidden layers "
                                f"then output layer), got {len(layer_name)}")
            for i, name in enumerate(layer_name):
                if name is not None and (not isinstance(name, str) or not name):
                    raise SpecError(f"{path}.layer_name[{i}]", f"expected a layer name or null, got {name!r}")
        if fit["rcond"] is not None:
            _at_least(fit["rcond"], 0, join(path, "rcond"))
        return
    # dipole / polar: the output is rotated by the descriptor's rotation matrix
    if not descriptor_has_rot_mat(descriptor):
        with_rot = ", ".join(e.name for e in reg.DESCRIPTORS.values() if e.rot_mat)
        if descriptor["type"] == "hybrid":
            lacking = sorted({str(sub["type"]) for sub in descriptor["list"] if not descriptor_has_rot_mat(sub)})
            what = f"model.descriptor is a hybrid with {', '.join(repr(t) for t in lacking)}, which has none"
        else:
            what = f"model.descriptor.type {descriptor['type']!r} has none"
        raise SpecError(join(path, "type"), f"a {fit['type']} fitting needs a descriptor with a rotation matrix "
                        f"({with_rot}, or a hybrid of only those); {what}")
    sel_type = fit["sel_type"]
    if sel_type is not None:
        if not sel_type:
            raise SpecError(join(path, "sel_type"), "is empty: no atom type would carry the tensor")
        for i, t in enumerate(sel_type):
            if kind_of(t) != "int" or t < 0 or (ntypes is not None and t >= ntypes):
                raise SpecError(f"{path}.sel_type[{i}]", f"type index {t!r} is out of range of model.type_map "
                                f"(0..{ntypes - 1 if ntypes is not None else 'ntypes - 1'})")
        if len(set(sel_type)) != len(sel_type):
            raise SpecError(join(path, "sel_type"), f"repeats a type: {sel_type}")
    if fit["type"] == "polar":
        scale = fit["scale"]
        if isinstance(scale, list) and any(kind_of(s) not in ("int", "float") for s in scale):
            raise SpecError(join(path, "scale"), f"expected a number or a list of numbers, got {scale!r}")


def descriptor_has_rot_mat(descriptor: Mapping[str, Any]) -> bool:
    """A hybrid has a rotation matrix when every sub-descriptor has one (they are concatenated)."""
    if descriptor["type"] == "hybrid":
        return all(descriptor_has_rot_mat(sub) for sub in descriptor["list"])
    entry = reg.lookup("descriptor", str(descriptor["type"]))
    return bool(entry and entry.rot_mat)


def _layer_sharing(fittings: Mapping[str, Mapping[str, Any]], root: str, *, single: bool = False) -> None:
    """Equal ``layer_name`` entries share one layer, so their shapes must agree."""
    seen: dict[str, tuple[str, tuple[Any, Any, str]]] = {}
    for task, fit in fittings.items():
        names = fit.get("layer_name")
        if not names:
            continue
        fit_path = root if single else join(root, task)
        if fit["type"] != "ener":
            raise SpecError(join(fit_path, "layer_name"), "layer sharing is only implemented for ener fittings")
        for i, name in enumerate(names):
            if name is None:
                continue
            shape = _layer_shape(fit, i)
            where = f"{fit_path}.layer_name[{i}]"
            if name in seen and seen[name][1] != shape:
                raise SpecError(where, f"layer {name!r} has shape {_show(shape)} here but {_show(seen[name][1])} in "
                                f"{seen[name][0]}; shared layers need equal shapes")
            seen.setdefault(name, (where, shape))


def _layer_shape(fit: Mapping[str, Any], i: int) -> tuple[Any, Any, str]:
    """(inputs, outputs, precision) of hidden layer ``i`` (``i == len(neuron)``: the output layer)."""
    neuron = fit["neuron"]
    if i == 0:
        inputs: Any = ("descriptor", fit["numb_fparam"] + fit["numb_aparam"])
    else:
        inputs = neuron[i - 1]
    precision = "float64" if fit["precision"] == "default" else fit["precision"]
    return inputs, (neuron[i] if i < len(neuron) else 1), precision


def _show(shape: tuple[Any, Any, str]) -> str:
    inputs, out, precision = shape
    if isinstance(inputs, tuple):
        inputs = "descriptor dim" + (f" + {inputs[1]} fparam/aparam" if inputs[1] else "")
    return f"({inputs} -> {out}, {precision})"


# --------------------------------------------------------------------------------------- loss


def _loss(loss: Mapping[str, Any], path: str, fit: Mapping[str, Any], fit_path: str) -> None:
    fit_entry = reg.FITTINGS[fit["type"]]
    if loss["type"] not in fit_entry.losses:
        raise SpecError(join(path, "type"), f"a {loss['type']!r} loss does not fit the {fit['type']!r} fitting of "
                        f"{fit_path}; use {' or '.join(repr(x) for x in fit_entry.losses)}")
    if loss["type"] == "ener":
        for key in reg.ENER_PREF_KEYS:
            _at_least(loss[key], 0, join(path, key))
        if all(loss[key] == 0 for key in reg.ENER_PREF_KEYS):
            raise SpecError(path, "every start_pref_*/limit_pref_* is 0: the loss is always zero")
        if loss["relative_f"] is not None:
            _positive(loss["relative_f"], join(path, "relative_f"))
        _at_least(loss["numb_generalized_coord"], 0, join(path, "numb_generalized_coord"))
    else:
        _at_least(loss["pref"], 0, join(path, "pref"))
        _at_least(loss["pref_atomic"], 0, join(path, "pref_atomic"))
        if loss["pref"] == 0 and loss["pref_atomic"] == 0:
            raise SpecError(path, "pref and pref_atomic are both 0: the loss is always zero")


# ------------------------------------------------------------------------------ learning rate


def _learning_rate(lr: Mapping[str, Any], path: str) -> list[str]:
    _positive(lr["start_lr"], join(path, "start_lr"))
    _at_least(lr["decay_steps"], 1, join(path, "decay_steps"))
    if lr["decay_rate"] is not None:
        rate = lr["decay_rate"]
        if not 0 < rate <= 1:
            raise SpecError(join(path, "decay_rate"), f"must be in (0, 1], got {rate}")
        return []
    if lr["stop_lr"] is None:
        raise SpecError(join(path, "stop_lr"), "needs a value (or give decay_rate)")
    _positive(lr["stop_lr"], join(path, "stop_lr"))
    if lr["stop_lr"] > lr["start_lr"]:
        return [f"{path}.stop_lr: {lr['stop_lr']} is larger than start_lr {lr['start_lr']}: the learning rate grows"]
    return []


# ------------------------------------------------------------------------------------ training


def _training(train: Mapping[str, Any], base_dir: Path | None, check_paths: bool) -> None:
    _at_least(train["numb_steps"], 1, "training.numb_steps")
    _at_least(train["disp_freq"], 1, "training.disp_freq")
    _at_least(train["save_freq"], 1, "training.save_freq")
    _at_least(train["max_ckpt_keep"], 1, "training.max_ckpt_keep")
    _seed(train["seed"], "training.seed")
    for key in ("disp_file", "save_ckpt"):
        if not train[key]:
            raise SpecError(join("training", key), "must not be empty")
    if train["sampling"]["type"] not in reg.SAMPLING_TYPES:
        raise SpecError("training.sampling.type", f"unknown sampling {train['sampling']['type']!r}; known: "
                        f"{', '.join(reg.SAMPLING_TYPES)}")
    sampling = train["sampling"]
    if sampling["type"] == "temperature" and not sampling["temperature"] > 0:
        raise SpecError("training.sampling.temperature", f"must be > 0, got {sampling['temperature']!r}")
    if sampling["type"] == "epochs":
        epochs = sampling.get("epochs")
        if not epochs:
            raise SpecError("training.sampling.epochs", "epochs sampling needs {task: number of epochs}")
        for task, e in epochs.items():
            if isinstance(e, bool) or not isinstance(e, (int, float)) or e < 0:
                raise SpecError(f"training.sampling.epochs.{task}", f"must be a number >= 0, got {e!r}")
    restart, frozen = train["restart"], train["init_frz_model"]
    if restart and frozen:
        raise SpecError("training.init_frz_model", "training.restart and training.init_frz_model exclude each "
                        "other (restart resumes a run, init_frz_model starts a new one from a model)")
    if check_paths and frozen:
        path = Path(resolve_system_path(frozen, base_dir))
        if not path.exists():
            raise SpecError("training.init_frz_model", f"frozen model {frozen!r} not found (looked for {path})")
    if check_paths and restart:
        path = Path(resolve_system_path(restart, base_dir))
        if not path.exists() and not any(path.parent.glob(glob_escape(path.name) + "*")):
            raise SpecError("training.restart", f"checkpoint {restart!r} not found (looked for {path}*)")


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _data(data: Mapping[str, Any], path: str, base_dir: Path | None, check_paths: bool,
          descriptor: Mapping[str, Any]) -> None:
    systems = data["systems"]
    if check_paths:
        check_systems(systems, base_dir, join(path, "systems"))
    elif not systems:
        raise SpecError(join(path, "systems"), "is empty")
    nsys = len(system_list(systems)) if isinstance(systems, list) else None
    _batch_size(data["batch_size"], join(path, "batch_size"), nsys, descriptor)
    probs = data["sys_probs"]
    if probs is not None:
        if any(kind_of(p) not in ("int", "float") for p in probs):
            raise SpecError(join(path, "sys_probs"), f"expected numbers, got {probs!r}")
        if nsys is not None and len(probs) != nsys:
            raise SpecError(join(path, "sys_probs"), f"needs one entry per system ({nsys}), got {len(probs)}")
    auto_prob = data["auto_prob"]
    if not (auto_prob == "prob_uniform" or auto_prob.startswith("prob_sys_size")):
        raise SpecError(join(path, "auto_prob"), f"expected 'prob_sys_size[;a:b:w...]' or 'prob_uniform', got "
                        f"{auto_prob!r}")
    if not data["set_prefix"]:
        raise SpecError(join(path, "set_prefix"), "must not be empty")
    if "numb_btch" in data:
        _at_least(data["numb_btch"], 1, join(path, "numb_btch"))
    if data.get("final_nframes") is not None:
        _at_least(data["final_nframes"], 1, join(path, "final_nframes"))


def _batch_size(bs: Any, path: str, nsys: int | None, descriptor: Mapping[str, Any]) -> None:
    if isinstance(bs, str):
        head, _, num = bs.partition(":")
        ok = (head == "auto" and not num) or (head in ("auto", "max", "mixed") and num.isdigit() and int(num) >= 1)
        if not ok:
            raise SpecError(path, f"expected an int >= 1, 'auto', 'auto:N', 'max:N' or 'mixed:N', got {bs!r}")
        if head == "mixed":
            _mixed_batch(path, descriptor)
        return
    sizes = bs if isinstance(bs, list) else [bs]
    for size in sizes:
        if kind_of(size) != "int" or size < 1:
            raise SpecError(path, f"batch sizes must be ints >= 1, got {bs!r}")
    if isinstance(bs, list) and nsys is not None and len(bs) != nsys:
        raise SpecError(path, f"needs one batch size per system ({nsys}), got {len(bs)}")


def _mixed_batch(path: str, descriptor: Mapping[str, Any]) -> None:
    """``mixed:N`` puts frames of systems of different sizes in one batch: DeePMD-kit allows it for mixed types."""
    subs = descriptor["list"] if descriptor["type"] == "hybrid" else [descriptor]
    lacking = [str(d["type"]) for d in subs if not reg.DESCRIPTORS[d["type"]].mixed_types]
    if lacking:
        mixed = ", ".join(e.name for e in reg.DESCRIPTORS.values() if e.mixed_types)
        raise SpecError(path, f"'mixed:N' batches (frames of several systems in one batch) need a mixed-type "
                        f"descriptor ({mixed}); model.descriptor is {', '.join(repr(t) for t in lacking)}")


def _fitting_weight(weights: Mapping[str, Any], left_out: Sequence[str]) -> list[str]:
    warnings = []
    for task, w in weights.items():
        key = join("training.fitting_weight", task)
        if kind_of(w) not in ("int", "float") or not math.isfinite(w):
            raise SpecError(key, f"must be a number, got {w!r}")
        if w < 0:
            raise SpecError(key, f"must be >= 0, got {w}")
    if all(w == 0 for w in weights.values()):
        raise SpecError("training.fitting_weight", "every task has weight 0: nothing would be trained")
    for task, w in weights.items():
        if w == 0 and task not in left_out:
            warnings.append(f"training.fitting_weight.{task}: weight 0, so task {task!r} will never be trained "
                            "(DeePMD-kit drops it silently)")
    return warnings


def _left_out_tasks(spec: Mapping[str, Any]) -> list[str]:
    """Tasks left out of a given ``fitting_weight`` (normalisation turns them into weight 0)."""
    try:
        weights = spec["training"]["fitting_weight"]
        tasks = list(spec["model"]["fitting_net_dict"])
    except (KeyError, TypeError):
        return []
    if not isinstance(weights, Mapping):
        return []
    return [t for t in tasks if isinstance(t, str) and not t.startswith("_") and t not in weights]


# ------------------------------------------------------------------------------- ignored keys


def _ignored_keys(norm: Mapping[str, Any]) -> list[str]:
    found = [k for k in reg.TOP_LEVEL_IGNORED if k in norm]
    found += _ignored_in(norm["model"], reg.MODEL, "model")
    lrs = {"learning_rate": norm["learning_rate"]}
    lrs.update({join("learning_rate_dict", t): lr for t, lr in norm.get("learning_rate_dict", {}).items()})
    for path, lr in lrs.items():
        found += _ignored_in(lr, reg.LEARNING_RATES[lr["type"]].options, path)
    train = norm["training"]
    found += _ignored_in(train, reg.TRAINING, "training")
    data = ({"training": {"training_data": train["training_data"], "validation_data": train["validation_data"]}}
            if "training_data" in train else
            {join("training.data_dict", t): d for t, d in train["data_dict"].items()})
    for path, entry in data.items():
        for key in ("training_data", "validation_data"):
            if entry[key] is not None:
                found += _ignored_in(entry[key], reg.VALIDATION_DATA, join(path, key))
    return found


def _ignored_in(section: Mapping[str, Any], schema: reg.Schema, path: str) -> list[str]:
    return [join(path, k) for k, opt in schema.items() if opt.status == "ignored" and k in section]


# ------------------------------------------------------------------------------------- checks


def _number(value: Any, path: str) -> float:
    if kind_of(value) not in ("int", "float") or not math.isfinite(value):
        raise SpecError(path, f"expected a finite number, got {value!r}")
    return value


def _positive(value: Any, path: str) -> None:
    if _number(value, path) <= 0:
        raise SpecError(path, f"must be > 0, got {value}")


def _at_least(value: Any, low: float, path: str) -> None:
    if _number(value, path) < low:
        raise SpecError(path, f"must be >= {low}, got {value}")


def _widths(neuron: Sequence[Any], path: str, *, allow_empty: bool) -> None:
    if not neuron and not allow_empty:
        raise SpecError(path, "needs at least one layer width")
    for i, n in enumerate(neuron):
        if kind_of(n) != "int" or n < 1:
            raise SpecError(f"{path}[{i}]", f"layer widths must be ints >= 1, got {n!r}")


def _activation(name: str, path: str) -> None:
    if name not in reg.ACTIVATIONS:
        raise SpecError(path, f"unknown activation {name!r}; known: {', '.join(reg.ACTIVATIONS)}")


def _precision(name: str, path: str) -> None:
    if name not in reg.PRECISIONS:
        raise SpecError(path, f"unsupported precision {name!r}; known: {', '.join(reg.PRECISIONS)}")


def _seed(seed: Any, path: str) -> None:
    if seed is not None and seed < 0:
        raise SpecError(path, f"must be >= 0 or null, got {seed}")


def _type_pairs(pairs: Sequence[Any], path: str, ntypes: int | None) -> None:
    top = ntypes if ntypes is not None else float("inf")
    for i, pair in enumerate(pairs):
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or any(kind_of(t) != "int" or not 0 <= t < top for t in pair)):
            span = f"0..{ntypes - 1}" if ntypes is not None else ">= 0"
            raise SpecError(f"{path}[{i}]", f"expected a pair of type indices in {span}, got {pair!r}")
