"""Start a training from a frozen model (``training.init_frz_model``): autocomplete the spec, then build the model.

The frozen model is anything :func:`mtbench.export.load.load_model` reads: a frozen mtbench model (SavedModel
folder or model file), a run folder or checkpoint, or a DeePMD-kit ``.dp`` file (one head, no training data).

Spec autocompletion (:func:`autocomplete_spec`, before normalisation):

* ``model.type_map`` missing: the frozen one; given: it must equal the frozen one.
* ``model.descriptor`` missing or ``{}``: the frozen descriptor's settings. Given settings must agree with the frozen
  ones (e.g. a different ``rcut`` is an error naming both values); only ``seed`` and ``trainable`` may differ
  (``trainable: false`` fine-tunes the heads on a fixed descriptor).
* Heads (``model.fitting_net_dict``; missing = every head of a frozen mtbench model):

  - frozen mtbench model: a task named like a frozen head *inherits* it (``{}``, or settings that agree with the
    frozen head's, ``seed``/``trainable`` excepted); ``{}`` under a name the frozen model lacks is an error;
  - ``.dp`` file: its one head is inherited by the first task whose settings agree with it, which must be the
    ``{}`` entry if there is one (so list it before new heads of the same architecture); at most one ``{}``;
  - every other task is a *new* head: full settings, and ``training.data_dict.<task>`` and ``loss_dict.<task>``
    must be given.

  An inherited head's missing ``loss_dict``/``training.data_dict``/``training.fitting_weight`` entries come from the
  frozen model's spec (a ``.dp`` has none: then they must be given). Single-task specs (``model.fitting_net``) work
  the same way with one task (``training.task_name``; a ``.dp``'s head, or the frozen head of that name, or the
  frozen model's only head).
* ``training.init_frz_model`` becomes an absolute path.

The result is fully explicit, so the run's ``input.json`` (written after normalisation) reproduces the run, and
:func:`initial_model` finds the same inherited heads in it by the same rules.

:func:`initial_model` builds the model the trainer starts from: the frozen descriptor (weights and statistics),
inherited heads with exactly the frozen weights and statistics, new heads fresh from their settings (sharing layers
with inherited heads where ``layer_name`` says so, seeded as a fresh model's heads are), and returns the new heads'
names: the trainer computes output statistics (e.g. the energy bias from their own data) for exactly those.

Why one module of ~500 lines: autocompletion and :func:`initial_model` apply the *same* matching rules (which task
inherits which frozen head); split apart, the two halves could drift and build a model the spec does not describe.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtbench.errors import SpecError
from mtbench.export.deepmd import FREE_KEYS, descriptor_config, fitting_config
from mtbench.export.load import LoadedModel, load_model
from mtbench.model.fitting import SharedLayers, fitting_class
from mtbench.model.multitask import Head, MultiTaskModel
from mtbench.model.networks import canonical_precision
from mtbench.spec import registry as reg
from mtbench.spec.normalize import SINGLE_TASK_MARKERS, has_key, is_multi_task

log = logging.getLogger("mtbench")

KEY = "training.init_frz_model"


@dataclass
class Frozen:
    """The frozen model and the spec sections of its parts."""

    loaded: LoadedModel
    path: Path
    descriptor: dict[str, Any]  # model.descriptor section
    heads: dict[str, dict[str, Any]]  # frozen head -> fitting_net section

    @property
    def from_deepmd(self) -> bool:
        return self.loaded.source == "deepmd"

    @property
    def spec(self) -> dict[str, Any] | None:
        return self.loaded.spec

    @property
    def type_map(self) -> list[str]:
        return list(self.loaded.model.type_map)

    def what(self) -> str:
        return f"the DeePMD-kit model {self.path}" if self.from_deepmd else f"the frozen model {self.path}"


def resolve_frozen_path(frozen_path: str, base_dir: Path | None) -> Path:
    """``frozen_path`` made absolute against ``base_dir`` (the input file's folder) or the current folder."""
    p = Path(str(frozen_path)).expanduser()
    if not p.is_absolute():
        p = (Path(base_dir) if base_dir is not None else Path.cwd()) / p
    p = p.resolve()
    if not p.exists():
        raise SpecError(KEY, f"frozen model {str(frozen_path)!r} not found (looked for {p})")
    return p


def load_frozen(path: Path) -> Frozen:
    loaded = load_model(path)
    model = loaded.model
    desc = descriptor_config(model.descriptor)
    heads = {t: fitting_config(h.fitting) for t, h in model.heads.items()}
    spec_model = (loaded.spec or {}).get("model") or {}
    seed = (spec_model.get("descriptor") or {}).get("seed")
    if seed is not None and desc["type"] != "hybrid":
        desc["seed"] = seed
    for task, cfg in heads.items():
        section = _task_section(loaded.spec, "fitting", task) or {}
        if section.get("seed") is not None:
            cfg["seed"] = section["seed"]
    return Frozen(loaded, path, desc, heads)


# ---------------------------------------------------------------------------------------- autocomplete


def autocomplete_spec(spec: dict, frozen_path: str, base_dir: Path | None) -> dict:
    """The spec with everything it inherits from the frozen model filled in (see the module docstring)."""
    path = resolve_frozen_path(frozen_path, base_dir)
    frozen = load_frozen(path)
    spec = copy.deepcopy(dict(spec))
    model = spec.setdefault("model", {})
    if not isinstance(model, dict):
        raise SpecError("model", f"must be a mapping, got {model!r}")
    training = spec.setdefault("training", {})
    training[KEY.split(".")[1]] = str(path)

    model["type_map"] = _checked_type_map(model.get("type_map"), frozen)
    model["descriptor"] = _merged_descriptor(model.get("descriptor"), frozen)

    single_markers = [m for m in SINGLE_TASK_MARKERS if has_key(spec, m)]
    multi = is_multi_task(spec) or (not single_markers and not frozen.from_deepmd)
    if multi:
        _complete_multi(spec, frozen)
    else:
        _complete_single(spec, frozen)
    return spec


def _complete_multi(spec: dict, frozen: Frozen) -> None:
    model, training = spec["model"], spec["training"]
    fittings = model.get("fitting_net_dict")
    if fittings is None:
        if frozen.from_deepmd:
            raise SpecError("model.fitting_net_dict", "required when starting from a DeePMD-kit .dp: list the task "
                            "that takes its head as {} and any new heads with their settings")
        fittings = {t: {} for t in frozen.heads}
    if not isinstance(fittings, Mapping):
        raise SpecError("model.fitting_net_dict", f"must be a mapping task -> settings, got {fittings!r}")
    fittings = dict(fittings)
    mapping = match_heads(fittings, frozen, single_task=None, autocomplete=True)
    for task, src in mapping.items():
        fittings[task] = _merged(fittings[task], frozen.heads[src])
    model["fitting_net_dict"] = fittings

    loss_dict = spec.get("loss_dict")
    loss_dict = dict(loss_dict) if isinstance(loss_dict, Mapping) else ({} if loss_dict is None else loss_dict)
    data_dict = training.get("data_dict")
    data_dict = dict(data_dict) if isinstance(data_dict, Mapping) else ({} if data_dict is None else data_dict)
    if not isinstance(loss_dict, dict):
        raise SpecError("loss_dict", f"must be a mapping task -> loss, got {loss_dict!r}")
    if not isinstance(data_dict, dict):
        raise SpecError("training.data_dict", f"must be a mapping task -> data, got {data_dict!r}")
    given_weights = training.get("fitting_weight")
    weights = dict(given_weights) if isinstance(given_weights, Mapping) else None
    if given_weights is not None and weights is None:
        raise SpecError("training.fitting_weight", f"must be a mapping task -> weight, got {given_weights!r}")
    new_weights = {}
    for task in fittings:
        src = mapping.get(task)
        if src is None:  # a new head: nothing to inherit
            for key, table in (("training.data_dict", data_dict), ("loss_dict", loss_dict)):
                if task not in table:
                    raise SpecError(f"{key}.{task}", f"required for the new head '{task}' (only heads inherited "
                                    f"from {frozen.what()} inherit their {key.split('.')[-1]} entry)")
            new_weights[task] = 1.0
            continue
        if task not in data_dict:
            data_dict[task] = _inherited(frozen, "data", src, f"training.data_dict.{task}")
        if task not in loss_dict:
            loss_dict[task] = _inherited(frozen, "loss", src, f"loss_dict.{task}")
        new_weights[task] = _frozen_weight(frozen, src)
    training["data_dict"] = {t: data_dict[t] for t in fittings if t in data_dict} | \
        {t: v for t, v in data_dict.items() if t not in fittings}
    spec["loss_dict"] = {t: loss_dict[t] for t in fittings if t in loss_dict} | \
        {t: v for t, v in loss_dict.items() if t not in fittings}
    if weights is None:
        training["fitting_weight"] = new_weights
    else:
        for task, src in mapping.items():
            weights.setdefault(task, new_weights[task])
        training["fitting_weight"] = weights


def _complete_single(spec: dict, frozen: Frozen) -> None:
    model, training = spec["model"], spec["training"]
    task = str(training.get("task_name", "default"))
    given = model.get("fitting_net")
    mapping = match_heads({task: given if given is not None else {}}, frozen, single_task=task, autocomplete=True)
    src = mapping.get(task)
    if src is None:
        if given is None:
            raise SpecError("model.fitting_net", "required: the new head's settings (no head of "
                            f"{frozen.what()} applies)")
        return
    model["fitting_net"] = _merged(given, frozen.heads[src])
    if "loss" not in spec and frozen.spec is not None:
        loss = _task_section(frozen.spec, "loss", src)
        if loss is not None:
            spec["loss"] = copy.deepcopy(loss)
    if "training_data" not in training and frozen.spec is not None:
        data = _task_section(frozen.spec, "data", src)
        if data is not None:
            training["training_data"] = copy.deepcopy(data["training_data"])
            if "validation_data" not in training and data.get("validation_data") is not None:
                training["validation_data"] = copy.deepcopy(data["validation_data"])


def _inherited(frozen: Frozen, what: str, src: str, key: str) -> Any:
    section = _task_section(frozen.spec, what, src)
    if section is None:
        kind = "loss settings" if what == "loss" else "training data"
        raise SpecError(key, f"required: {frozen.what()} carries no {kind} for its head "
                        f"{'' if frozen.from_deepmd else repr(src) + ' '}to inherit")
    return copy.deepcopy(section)


def _frozen_weight(frozen: Frozen, src: str) -> float:
    weights = ((frozen.spec or {}).get("training") or {}).get("fitting_weight")
    if isinstance(weights, Mapping) and src in weights:
        return weights[src]
    return 1.0


def _task_section(spec: Mapping[str, Any] | None, what: str, task: str) -> Any:
    """One task's fitting / loss / data ({training_data, validation_data}) section of a (normalised) spec."""
    if not spec:
        return None
    model = spec.get("model") or {}
    training = spec.get("training") or {}
    if "fitting_net_dict" in model:
        if what == "fitting":
            return (model["fitting_net_dict"] or {}).get(task)
        if what == "loss":
            return (spec.get("loss_dict") or {}).get(task)
        return (training.get("data_dict") or {}).get(task)
    if training.get("task_name", "default") != task:
        return None
    if what == "fitting":
        return model.get("fitting_net")
    if what == "loss":
        return spec.get("loss")
    if "training_data" not in training:
        return None
    return {"training_data": training["training_data"], "validation_data": training.get("validation_data")}


def _checked_type_map(given: Any, frozen: Frozen) -> list[str]:
    if given is None:
        return frozen.type_map
    if list(given) != frozen.type_map:
        raise SpecError("model.type_map", f"{list(given)} differs from the type map {frozen.type_map} of "
                        f"{frozen.what()}; leave it out to inherit it")
    return list(given)


def _merged_descriptor(given: Any, frozen: Frozen) -> dict[str, Any]:
    if given is None or given == {}:
        return copy.deepcopy(frozen.descriptor)
    if not isinstance(given, Mapping):
        raise SpecError("model.descriptor", f"must be a mapping, got {given!r}")
    _raise_conflicts("descriptor", given, frozen.descriptor, len(frozen.type_map), "model.descriptor", frozen)
    merged = _merged(given, frozen.descriptor)
    if merged["type"] == "hybrid":
        for i, sub in enumerate(given.get("list") or []):
            merged["list"][i] = _merged(sub, frozen.descriptor["list"][i])
    return merged


def _merged(given: Mapping[str, Any] | None, frozen_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The frozen settings, with the given free settings (seed, trainable) on top."""
    merged = copy.deepcopy(dict(frozen_cfg))
    for key in FREE_KEYS:
        if given and key in given:
            merged[key] = copy.deepcopy(given[key])
    return merged


# ---------------------------------------------------------------------------------------- head matching


def match_heads(fittings: Mapping[str, Any], frozen: Frozen, *, single_task: str | None,
                autocomplete: bool = False) -> dict[str, str]:
    """``{task: frozen head}`` for the tasks that inherit a frozen head (rules in the module docstring).

    ``fittings`` are raw (autocomplete: ``{}`` = inherit) or normalised settings.
    """
    ntypes = len(frozen.type_map)
    where = "model.fitting_net" if single_task is not None else "model.fitting_net_dict"

    def key(task: str) -> str:
        return where if single_task is not None else f"{where}.{task}"

    empties = [t for t, cfg in fittings.items() if cfg is None or cfg == {}]
    for task, cfg in fittings.items():
        if cfg is not None and not isinstance(cfg, Mapping):
            raise SpecError(key(task), f"must be a mapping of fitting settings, got {cfg!r}")
    mapping: dict[str, str] = {}
    if frozen.from_deepmd:
        (src,) = frozen.heads
        if len(empties) > 1:
            raise SpecError(where, f"a DeePMD-kit .dp model holds one head but {len(empties)} tasks inherit one "
                            f"({', '.join(empties)} are {{}}); give the new heads their settings")
        fits = [t for t, cfg in fittings.items() if not _conflicts("fitting", cfg or {}, frozen.heads[src], ntypes)]
        if fits:
            if autocomplete and empties and fits[0] != empties[0]:
                raise SpecError(key(fits[0]), f"has the settings of the head of {frozen.what()} and comes before "
                                f"'{empties[0]}' ({{}}): the .dp head goes to the first such task, so list "
                                f"'{empties[0]}' first")
            mapping[fits[0]] = src
        return mapping
    for task, cfg in fittings.items():
        src = task
        if single_task is not None and task not in frozen.heads and len(frozen.heads) == 1:
            (src,) = frozen.heads
        if src in frozen.heads:
            _raise_conflicts("fitting", cfg or {}, frozen.heads[src], ntypes, key(task), frozen,
                             head=src)
            mapping[task] = src
        elif cfg is None or cfg == {}:
            raise SpecError(key(task), f"{{}} inherits a head of {frozen.what()}, which has no head '{task}' "
                            f"(heads: {', '.join(frozen.heads)})")
    return mapping


# ------------------------------------------------------------------------------------ settings compared


def _raise_conflicts(kind: str, given: Mapping[str, Any], frozen_cfg: Mapping[str, Any], ntypes: int, path: str,
                     frozen: Frozen, head: str | None = None) -> None:
    found = _conflicts(kind, given, frozen_cfg, ntypes, path)
    if not found:
        return
    where, mine, theirs = found[0]
    if head is None:
        hint = "leave it out (or give model.descriptor as {}) to inherit it"
        part = "descriptor"
    else:
        hint = ("a head named like a frozen head inherits it: give {} or matching settings, or name a new head "
                "differently")
        part = f"head '{head}'"
    also = "".join(f"; {k.rsplit('.', 1)[-1]} also differs ({a!r} vs {b!r})" for k, a, b in found[1:])
    raise SpecError(where, f"{mine!r} conflicts with {theirs!r} of the {part} of {frozen.what()}{also}; {hint}")


def _conflicts(kind: str, given: Mapping[str, Any], frozen_cfg: Mapping[str, Any], ntypes: int,
               path: str = "") -> list[tuple[str, Any, Any]]:
    """(key path, given value, frozen value) for every given setting that differs from the frozen one."""
    out: list[tuple[str, Any, Any]] = []
    ftype = frozen_cfg["type"]
    gtype_raw = given.get("type", ftype)  # not stated: nothing to disagree with
    gtype = reg.canonical_type(kind, str(gtype_raw)) or gtype_raw
    if gtype != ftype:
        return [(f"{path}.type", gtype_raw, ftype)]
    if ftype == "hybrid":
        subs, fsubs = given.get("list"), frozen_cfg["list"]
        if subs is None:
            return []
        if not isinstance(subs, list) or len(subs) != len(fsubs):
            return [(f"{path}.list", subs, fsubs)]
        for i, (sub, fsub) in enumerate(zip(subs, fsubs)):
            if isinstance(sub, Mapping):
                out += _conflicts(kind, sub, fsub, ntypes, f"{path}.list[{i}]")
        return out
    entry = reg.lookup(kind, ftype)
    options = entry.options if entry is not None else {}
    aliases = {a: name for name, opt in options.items() for a in opt.aliases}
    mixed = bool(entry is not None and entry.mixed_types)
    for raw_key, value in given.items():
        if raw_key == "type" or str(raw_key).startswith("_"):
            continue
        name = aliases.get(raw_key, raw_key)
        if name == "stripped_type_embedding":
            if value is None:
                continue
            name, value = "tebd_input_mode", "strip" if value else "concat"
        if name in FREE_KEYS:
            continue
        if name in frozen_cfg:
            ref = frozen_cfg[name]
        elif name in options and options[name].default not in (reg.OMIT, reg.REQUIRED):
            ref = options[name].default
        else:
            continue
        ctx = {"ntypes": ntypes, "mixed": mixed, "given": given, "frozen": frozen_cfg}
        a, b = _canon(name, value, ctx, "given"), _canon(name, ref, ctx, "frozen")
        if a is _SKIP or b is _SKIP:
            continue
        if a != b:
            out.append((f"{path}.{raw_key}", value, ref))
    return out


_SKIP = object()


def _canon(name: str, value: Any, ctx: Mapping[str, Any], side: str) -> Any:
    """A comparable form of one setting (aliases of the same value compare equal)."""
    ntypes = ctx["ntypes"]
    if name == "precision":
        return canonical_precision(value)
    if name == "sel":
        if isinstance(value, str):
            return _SKIP  # 'auto': the frozen sel is taken
        if ctx["mixed"]:
            return int(sum(value)) if isinstance(value, (list, tuple)) else int(value)
        return [int(v) for v in value] if isinstance(value, (list, tuple)) else value
    if name == "sel_type":
        if value is None:
            return list(range(ntypes))
        return sorted(int(v) for v in ([value] if isinstance(value, int) else value))
    if name == "atom_ener":
        return [None if v is None else float(v) for v in (value or [])]
    if name == "exclude_types":
        return sorted(tuple(sorted(int(x) for x in p)) if isinstance(p, (list, tuple)) else int(p)
                      for p in (value or []))
    if name == "scale":
        cfg = ctx[side]
        if isinstance(value, (list, tuple)):
            if len(value) == ntypes:
                return [float(v) for v in value]
            full = [1.0] * ntypes
            for t, s in zip(_canon("sel_type", cfg.get("sel_type"), ctx, side), value):
                full[t] = float(s)
            return full
        return [float(value)] * ntypes
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


# ------------------------------------------------------------------------------------------ the model


def initial_model(spec: dict, frozen_path: str) -> tuple[MultiTaskModel, set[str]]:
    """The model a training from a frozen model starts with, and the names of its new heads."""
    from mtbench.spec.tasks import task_view

    frozen = load_frozen(resolve_frozen_path(frozen_path, None))
    tasks = task_view(spec)
    model_cfg = spec["model"]
    _checked_type_map(model_cfg.get("type_map"), frozen)
    _raise_conflicts("descriptor", model_cfg["descriptor"], frozen.descriptor, len(frozen.type_map),
                     "model.descriptor", frozen)
    single = None if is_multi_task(spec) else next(iter(tasks))
    mapping = match_heads({t: ts.fitting_net for t, ts in tasks.items()}, frozen, single_task=single)

    data = frozen.loaded.model.to_dict()
    desc = _with_trainable(data["descriptor"], model_cfg["descriptor"])
    heads_data = {}
    for task, src in mapping.items():
        hd = copy.deepcopy(data["heads"][src])
        if "trainable" in tasks[task].fitting_net:
            hd["fitting"]["trainable"] = tasks[task].fitting_net["trainable"]
        heads_data[task] = hd
    base = MultiTaskModel.from_dict({"type_map": data["type_map"], "descriptor": desc, "heads": heads_data})
    shared = shared_layers(base)
    seed = model_cfg["descriptor"].get("seed", spec["training"].get("seed"))
    descriptor = base.descriptor
    heads: dict[str, Head] = {}
    for k, (task, ts) in enumerate(tasks.items()):
        if task in mapping:
            heads[task] = base.heads[task]
            continue
        cfg = ts.fitting_net
        rng = np.random.default_rng(None if seed is None else [seed, k + 1])
        fitting = fitting_class(cfg.get("type", "ener")).build(
            cfg, ntypes=base.ntypes, dim_descrpt=descriptor.dim_out, dim_emb=descriptor.dim_emb,
            mixed_types=descriptor.mixed_types, rng=rng, shared=shared, type_map=base.type_map)
        heads[task] = Head(fitting, name=task)
    new = {t for t in tasks if t not in mapping}
    inherited = ", ".join(f"{t} <- {s}" for t, s in mapping.items()) or "none"
    log.info("starting from %s: descriptor and heads (%s) inherited; new heads: %s", frozen.what(), inherited,
             ", ".join(sorted(new)) or "none")
    return MultiTaskModel(base.type_map, descriptor, heads), new


def _with_trainable(desc: dict[str, Any], cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The frozen descriptor's dict with the spec's ``trainable`` (hybrid: per sub-descriptor)."""
    desc = dict(desc)
    if desc.get("type") == "hybrid":
        subs = cfg.get("list") or []
        desc["list"] = [_with_trainable(d, subs[i] if i < len(subs) else {}) for i, d in enumerate(desc["list"])]
        return desc
    if "trainable" in cfg:
        desc["trainable"] = bool(cfg["trainable"])
    return desc


def shared_layers(model: MultiTaskModel) -> SharedLayers:
    """The model's named fitting layers, keyed as fittings look them up when they are built (``layer_name``)."""
    shared: SharedLayers = {}
    for head in model.heads.values():
        fitting = head.fitting
        for k, net in enumerate(fitting.nets.networks):
            if net is None or not fitting.layer_name:
                continue
            t = -1 if fitting.mixed_types else k
            for name, layer in zip(fitting.layer_name, net.layers):
                if name:
                    shared.setdefault((name, t), layer)
    return shared

