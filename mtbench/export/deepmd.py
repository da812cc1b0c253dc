"""One head as DeePMD-kit's backend-independent model file (``.dp``), and the spec sections of a model's parts.

A ``.dp`` file is DeePMD-kit's HDF5 layout (:mod:`mtbench.model.serialization`) of::

    {"backend": "mtbench", "mtbench_version": ..., "mtbench_head": <head name>, "model": <standard model dict: descriptor + fitting + out_bias>,
     "model_def_script": {"type_map": ..., "descriptor": ..., "fitting_net": ...},   # DeePMD v3 input keys
     "@variables": {"min_nbor_dist": ...}}                                          # only when known

the keys DeePMD-kit's own converters write (``dp convert-backend`` reads ``model``, ``model_def_script`` and
``@variables``), so ``DeepPot``/``DeepDipole``/``DeepPolar``, ``dp test`` and ``dp convert-backend x.dp x.pb``
accept it (they ignore ``mtbench_head``, which lets mtbench name the head as it was trained). Heads that share fitting layers (``layer_name``) are written with their effective weights. A tensor
head's ``sel_type`` is written as the model's ``atom_exclude_types`` (the other types), where DeePMD-kit v3 reads it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mtbench import __version__
from mtbench.model.descriptor import Descriptor
from mtbench.model.fitting import Fitting
from mtbench.model.multitask import MultiTaskModel
from mtbench.model.serialization import save_model_file
from mtbench.spec import registry as reg

#: Settings that only affect how training starts or proceeds, not what a model computes: a spec may set them
#: differently from the model it starts from.
FREE_KEYS = ("seed", "trainable")
#: Top-level ``.dp`` key naming the head the file was written from (DeePMD-kit ignores unknown keys).
HEAD_KEY = "mtbench_head"


def _filtered(kind: str, type_name: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` limited to the options the spec registry knows for this type (plus ``type``)."""
    entry = reg.lookup(kind, type_name)
    if entry is None:
        raise ValueError(f"unknown {kind} type {type_name!r}")
    out = {"type": entry.name}
    for key, opt in entry.options.items():
        if key in data and opt.status == "ok":
            out[key] = copy.deepcopy(data[key])
    return out


def descriptor_config(descriptor: Descriptor) -> dict[str, Any]:
    """The ``model.descriptor`` section (DeePMD input keys) that builds ``descriptor``'s architecture."""
    cfg = descriptor.config()
    if cfg.get("type", descriptor.type_name) == "hybrid" or descriptor.type_name == "hybrid":
        return {"type": "hybrid",
                "list": [_filtered("descriptor", sub["type"], sub) for sub in cfg["list"]]}
    return _filtered("descriptor", descriptor.type_name, cfg)


def fitting_config(fitting: Fitting) -> dict[str, Any]:
    """The ``fitting_net`` section (DeePMD input keys) that builds ``fitting``'s architecture."""
    data = fitting.to_dict()
    cfg: dict[str, Any] = {k: data[k] for k in ("neuron", "resnet_dt", "numb_fparam", "numb_aparam",
                                                 "activation_function", "precision", "trainable", "rcond",
                                                 "layer_name") if k in data}
    cfg["neuron"] = list(cfg["neuron"])
    if fitting.type_name == "ener":
        cfg["atom_ener"] = list(data.get("atom_ener") or [])
        cfg["use_aparam_as_mask"] = bool(data.get("use_aparam_as_mask", False))
    else:
        cfg["sel_type"] = list(fitting.sel_type)
    if fitting.type_name == "polar":
        cfg["fit_diag"] = bool(data["fit_diag"])
        cfg["shift_diag"] = bool(data["shift_diag"])
        cfg["scale"] = [float(x) for x in data["@variables"]["scale"].reshape(-1)]
    if isinstance(cfg.get("trainable"), (list, tuple)):
        cfg["trainable"] = [bool(x) for x in cfg["trainable"]]
    return _filtered("fitting", fitting.type_name, cfg)


def _spec_section(spec: Mapping[str, Any] | None, task: str) -> dict[str, Any]:
    """The head's ``fitting_net`` section in ``spec`` (multi- or single-task), or {}."""
    model = (spec or {}).get("model") or {}
    if "fitting_net_dict" in model:
        return dict(model["fitting_net_dict"].get(task) or {})
    return dict(model.get("fitting_net") or {})


def model_def_script(model: MultiTaskModel, task: str, spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """DeePMD-kit's model config of one head: ``type_map``, ``descriptor``, ``fitting_net`` (v3 input keys).

    Built from the model itself (so it always matches the weights); seeds come from ``spec`` when given.
    """
    desc = descriptor_config(model.descriptor)
    seed = ((spec or {}).get("model") or {}).get("descriptor", {}).get("seed")
    if seed is not None and desc["type"] != "hybrid":
        desc["seed"] = seed
    fit = fitting_config(model.heads[task].fitting)
    fit.pop("layer_name", None)  # DeePMD-kit's single-head models have no shared layers
    fit.pop("sel_type", None)  # v3 states it as the model's atom_exclude_types (sel_type is TF-only there)
    fit_seed = _spec_section(spec, task).get("seed")
    if fit_seed is not None:
        fit["seed"] = fit_seed
    script = {"type_map": list(model.type_map), "descriptor": desc, "fitting_net": fit}
    excluded = excluded_types(model, task)
    if excluded:
        script["atom_exclude_types"] = excluded
    return script


def excluded_types(model: MultiTaskModel, task: str) -> list[int]:
    """Atom types head ``task`` gives no output for (its own exclusions and a tensor head's non-``sel_type``)."""
    head = model.heads[task]
    return sorted({*head.atom_exclude_types, *head.fitting.exclude_types})


def dp_file_dict(model: MultiTaskModel, task: str, *, spec: Mapping[str, Any] | None = None,
                 min_nbor_dist: float | None = None) -> dict[str, Any]:
    """The document of a ``.dp`` file for head ``task`` (see the module docstring)."""
    if task not in model.heads:
        raise KeyError(task)
    head_dict = model.head_model_dict(task)
    # DeePMD-kit v3 overwrites the fitting's exclude_types (a tensor head's sel_type) with the model-level
    # atom_exclude_types when it builds the model, so the exclusion has to be stated there.
    head_dict["atom_exclude_types"] = excluded_types(model, task)
    data: dict[str, Any] = {"backend": "mtbench", "mtbench_version": __version__, HEAD_KEY: task,
                            "model": head_dict,
                            "model_def_script": model_def_script(model, task, spec)}
    if min_nbor_dist is not None:
        data["@variables"] = {"min_nbor_dist": float(min_nbor_dist)}
    return data


def write_dp(path: str | Path, model: MultiTaskModel, task: str, *, spec: Mapping[str, Any] | None = None,
             min_nbor_dist: float | None = None) -> Path:
    """Write head ``task`` of ``model`` as a DeePMD-kit ``.dp`` file."""
    path = Path(path)
    save_model_file(path, dp_file_dict(model, task, spec=spec, min_nbor_dist=min_nbor_dist), software="mtbench")
    return path
