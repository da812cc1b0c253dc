"""The names mtbench knows in a training spec, and the options each accepts.

One small registry of plain data: descriptor, fitting, loss and learning-rate *types*
(with DeePMD-kit's aliases) mapped to option schemas, plus the schemas of the fixed
sections (``model``, ``training``, data sections). The model, loss and trainer code look
types up here by name; there is no ``_target_`` anywhere.

Defaults are DeePMD-kit's argcheck defaults: v3.2 for model options where v3 and v2.2
differ (e.g. ``se_atten.tebd_input_mode`` replaces v2's ``stripped_type_embedding``,
which stays accepted), v2.2 for everything else (e.g. ``learning_rate.stop_lr`` 1e-8).

Each option has a *status*:

- ``ok``: supported; the normalised spec always holds it (default filled in).
- ``fixed``: a DeePMD-kit v3 option whose only supported value is its default; it is
  accepted at that value and not filled in, any other value is a :class:`SpecError`.
- ``ignored``: part of DeePMD-kit's schema but meaningless for mtbench (tensorboard,
  profiling, ...); kept as given and reported in one warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "fixed", "ignored"]


class _Marker:
    """A named sentinel (REQUIRED / OMIT) that prints readably."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


REQUIRED: Any = _Marker("REQUIRED")
"""The option has no default: a spec without it is an error."""
OMIT: Any = _Marker("OMIT")
"""The option has no default and is left out when absent (absence has a meaning)."""


@dataclass(frozen=True)
class Option:
    """One key of a section: its default, accepted value kinds and aliases."""

    default: Any = OMIT
    kinds: tuple[str, ...] = ()  # subset of: int float bool str list dict null; () = anything
    aliases: tuple[str, ...] = ()
    status: Status = "ok"
    doc: str = ""


Schema = dict[str, Option]


@dataclass(frozen=True)
class TypeEntry:
    """A ``type:`` value of a variant section (descriptor, fitting, loss, learning rate)."""

    name: str
    options: Schema
    aliases: tuple[str, ...] = ()
    doc: str = ""
    # descriptor only: whether it provides the rotation matrix dipole/polar fittings need
    rot_mat: bool = False
    # descriptor only: one neighbour block (sel is an int) instead of one block per type
    mixed_types: bool = False
    # fitting only: the loss types that can train it
    losses: tuple[str, ...] = field(default_factory=tuple)


def _o(default: Any = OMIT, *kinds: str, aliases: tuple[str, ...] = (), status: Status = "ok",
       doc: str = "") -> Option:
    return Option(default=default, kinds=kinds, aliases=aliases, status=status, doc=doc)


NUM = ("int", "float")
ACTIVATIONS = ("tanh", "relu", "relu6", "softplus", "sigmoid", "gelu", "gelu_tf", "linear", "none", "None")
PRECISIONS = ("default", "float32", "float64")

# ---------------------------------------------------------------------------------- descriptors

_SE_COMMON: Schema = {
    "sel": _o("auto", "list", "str", "int", doc="neighbour slots per type, or 'auto[:factor]'"),
    "rcut": _o(6.0, *NUM),
    "rcut_smth": _o(0.5, *NUM),
    "neuron": _o([10, 20, 40], "list"),
}
_SE_TAIL: Schema = {
    "activation_function": _o("tanh", "str"),
    "resnet_dt": _o(False, "bool"),
    "type_one_side": _o(False, "bool"),
    "precision": _o("default", "str"),
    "trainable": _o(True, "bool"),
    "seed": _o(None, "int", "null"),
    "exclude_types": _o([], "list"),
    "env_protection": _o(0.0, *NUM),
    "set_davg_zero": _o(False, "bool"),
}

SE_E2_A: Schema = {
    **_SE_COMMON,
    "axis_neuron": _o(4, "int", aliases=("n_axis_neuron",)),
    **_SE_TAIL,
}
SE_E2_R: Schema = {**_SE_COMMON, **_SE_TAIL}
SE_E3: Schema = {**_SE_COMMON, **{k: v for k, v in _SE_TAIL.items() if k != "type_one_side"}}

_ATTEN_COMMON: Schema = {
    **SE_E2_A,
    "attn": _o(128, "int"),
    "attn_layer": _o(2, "int"),
    "attn_dotr": _o(True, "bool"),
    "attn_mask": _o(False, "bool"),
    "tebd_dim": _o(8, "int"),
    "concat_output_tebd": _o(True, "bool"),
    "ln_eps": _o(None, *NUM, "null", doc="LayerNorm epsilon; null = the implementation's default"),
    "trainable_ln": _o(True, "bool"),
    "use_tebd_bias": _o(False, "bool"),
    "scaling_factor": _o(1.0, *NUM),
    "normalize": _o(True, "bool"),
    "temperature": _o(None, *NUM, "null", doc="attention scale; null = (attn * scaling_factor) ** 0.5"),
    "lmax": _o(OMIT, "int", "null", doc="v3 env-matrix order; only 1 (DPA-1) is implemented"),
    "use_econf_tebd": _o(False, "bool", status="fixed"),
}
SE_ATTEN: Schema = {
    **_ATTEN_COMMON,
    "set_davg_zero": _o(True, "bool"),
    "tebd_input_mode": _o("concat", "str", doc="'concat' or 'strip' (v2: stripped_type_embedding)"),
    "smooth_type_embedding": _o(False, "bool", aliases=("smooth_type_embdding",)),
}
SE_ATTEN_V2: Schema = {**_ATTEN_COMMON, "set_davg_zero": _o(False, "bool")}
HYBRID: Schema = {"list": _o(REQUIRED, "list", doc="sub-descriptor dicts")}

# The one list of descriptor and fitting types: the model classes register against these canonical names
# (mtbench.model.descriptor.base.register_descriptor, mtbench.model.fitting.base.register_fitting) and resolve
# aliases here. Aliases are DeePMD-kit's (deepmd/utils/argcheck.py, v3.2); one tuple per entry.
DESCRIPTORS: dict[str, TypeEntry] = {
    e.name: e
    for e in (
        TypeEntry("se_e2_a", SE_E2_A, aliases=("se_a",), rot_mat=True, doc="two-body smooth edition, angular"),
        TypeEntry("se_e2_r", SE_E2_R, aliases=("se_r",), doc="two-body smooth edition, radial only"),
        TypeEntry("se_e3", SE_E3, aliases=("se_at", "se_a_3be", "se_t"), doc="three-body embedding"),
        TypeEntry("se_atten", SE_ATTEN, aliases=("dpa1",), rot_mat=True, mixed_types=True, doc="DPA-1 attention"),
        TypeEntry("se_atten_v2", SE_ATTEN_V2, rot_mat=True, mixed_types=True, doc="DPA-1, stripped+smooth"),
        TypeEntry("hybrid", HYBRID, doc="concatenation of sub-descriptors"),
    )
}

# ------------------------------------------------------------------------------------- fittings

_FIT_COMMON: Schema = {
    "numb_fparam": _o(0, "int"),
    "numb_aparam": _o(0, "int"),
    "neuron": _o([120, 120, 120], "list", aliases=("n_neuron",)),
    "activation_function": _o("tanh", "str"),
    "precision": _o("default", "str"),
    "resnet_dt": _o(True, "bool"),
    "seed": _o(None, "int", "null"),
    "default_fparam": _o(None, "list", "null", status="fixed"),
    "dim_case_embd": _o(0, "int", status="fixed"),
}
FIT_ENER: Schema = {
    **_FIT_COMMON,
    "trainable": _o(True, "bool", "list"),
    "rcond": _o(None, *NUM, "null"),
    "atom_ener": _o([], "list"),
    "layer_name": _o(None, "list", "null", doc="len(neuron)+1 names (or null); equal names share a layer"),
    "use_aparam_as_mask": _o(False, "bool"),
}
FIT_DIPOLE: Schema = {
    **_FIT_COMMON,
    "sel_type": _o(None, "list", "int", "null", aliases=("dipole_type",)),
}
FIT_POLAR: Schema = {
    **_FIT_COMMON,
    "fit_diag": _o(True, "bool"),
    "scale": _o(1.0, *NUM, "list"),
    "shift_diag": _o(True, "bool"),
    "sel_type": _o(None, "list", "int", "null", aliases=("pol_type",)),
}

FITTINGS: dict[str, TypeEntry] = {
    e.name: e
    for e in (
        TypeEntry("ener", FIT_ENER, losses=("ener",), doc="energy (forces, virial by autodiff)"),
        TypeEntry("dipole", FIT_DIPOLE, losses=("tensor",), doc="atomic/global dipole"),
        TypeEntry("polar", FIT_POLAR, losses=("tensor",), doc="atomic/global polarizability"),
    )
}
DEFAULT_FITTING = "ener"

# --------------------------------------------------------------------------------------- losses


LOSS_ENER: Schema = {
    "start_pref_e": _o(0.02, *NUM),
    "limit_pref_e": _o(1.0, *NUM),
    "start_pref_f": _o(1000, *NUM),
    "limit_pref_f": _o(1.0, *NUM),
    "start_pref_v": _o(0.0, *NUM),
    "limit_pref_v": _o(0.0, *NUM),
    "start_pref_ae": _o(0.0, *NUM),
    "limit_pref_ae": _o(0.0, *NUM),
    "start_pref_pf": _o(0.0, *NUM),
    "limit_pref_pf": _o(0.0, *NUM),
    "relative_f": _o(None, *NUM, "null"),
    "enable_atom_ener_coeff": _o(False, "bool"),
    "start_pref_gf": _o(0.0, *NUM),
    "limit_pref_gf": _o(0.0, *NUM),
    "numb_generalized_coord": _o(0, "int"),
    "use_default_pf": _o(False, "bool", status="fixed"),
    "start_pref_h": _o(0.0, *NUM, status="fixed"),
    "limit_pref_h": _o(0.0, *NUM, status="fixed"),
    "use_huber": _o(False, "bool", status="fixed"),
    "huber_delta": _o(0.01, *NUM, "list", status="fixed"),
    "loss_func": _o("mse", "str", status="fixed"),
    "f_use_norm": _o(False, "bool", status="fixed"),
    "intensive_ener_virial": _o(False, "bool", status="fixed"),
}
LOSS_TENSOR: Schema = {
    "pref": _o(REQUIRED, *NUM, doc="weight of the global (per-frame) label"),
    "pref_atomic": _o(REQUIRED, *NUM, doc="weight of the atomic label"),
    "enable_atomic_weight": _o(False, "bool", status="fixed"),
}
ENER_PREF_KEYS: tuple[str, ...] = tuple(k for k, o in LOSS_ENER.items()
                                        if k.startswith(("start_pref", "limit_pref")) and o.status == "ok")

LOSSES: dict[str, TypeEntry] = {
    e.name: e
    for e in (
        TypeEntry("ener", LOSS_ENER, doc="energy/force/virial"),
        TypeEntry("tensor", LOSS_TENSOR, doc="dipole/polarizability"),
    )
}

# -------------------------------------------------------------------------------- learning rate

LR_EXP: Schema = {
    "start_lr": _o(1e-3, *NUM),
    "stop_lr": _o(1e-8, *NUM, "null"),
    "decay_steps": _o(5000, "int"),
    "decay_rate": _o(None, *NUM, "null", doc="if set, used instead of the rate derived from stop_lr"),
    "scale_by_worker": _o(OMIT, "str", doc="data-parallel training: start lr times N replicas (linear, the "
                                           "default), sqrt(N) (sqrt) or unchanged (none)"),
    "stop_lr_ratio": _o(None, *NUM, "null", status="fixed"),
    "warmup_steps": _o(0, "int", status="fixed"),
    "warmup_ratio": _o(None, *NUM, "null", status="fixed"),
    "warmup_start_factor": _o(0.0, *NUM, status="fixed"),
    "smooth": _o(False, "bool", status="fixed"),
}
LEARNING_RATES: dict[str, TypeEntry] = {"exp": TypeEntry("exp", LR_EXP, doc="staircase exponential decay")}
DEFAULT_LEARNING_RATE = "exp"

# ------------------------------------------------------------------------------ fixed sections

TYPE_EMBEDDING: Schema = {
    "neuron": _o([8], "list"),
    "activation_function": _o("tanh", "str"),
    "resnet_dt": _o(False, "bool"),
    "precision": _o("default", "str"),
    "trainable": _o(True, "bool"),
    "seed": _o(None, "int", "null"),
    "use_econf_tebd": _o(False, "bool", status="fixed"),
    "use_tebd_bias": _o(False, "bool"),
}

MODEL: Schema = {
    "type_map": _o(OMIT, "list", doc="absent: types by data index, named type_0, type_1, ... (DeePMD-kit v2)"),
    "data_stat_nbatch": _o(10, "int"),
    "data_stat_protect": _o(1e-2, *NUM),
    "data_bias_nsample": _o(10, "int", status="ignored"),
    "type_embedding": _o(OMIT, "dict"),
    "use_srtab": _o(None, "str", "null", status="fixed"),
    "smin_alpha": _o(None, *NUM, "null", status="fixed"),
    "sw_rmin": _o(None, *NUM, "null", status="fixed"),
    "sw_rmax": _o(None, *NUM, "null", status="fixed"),
    "srtab_add_bias": _o(True, "bool", status="ignored"),
    "pair_exclude_types": _o([], "list", status="fixed"),
    "atom_exclude_types": _o([], "list", status="fixed"),
    "preset_out_bias": _o(None, "dict", "null", status="fixed"),
    "modifier": _o(None, "dict", "null", status="fixed"),
    "compress": _o(None, "dict", "null", status="fixed"),
    "spin": _o(None, "dict", "null", status="fixed"),
    "finetune_head": _o(OMIT, "str", status="ignored"),
}
MODEL_SECTIONS = ("descriptor", "fitting_net", "fitting_net_dict")
"""Keys of ``model`` that normalize handles itself (variant sections)."""

TRAINING_DATA: Schema = {
    "systems": _o(REQUIRED, "str", "list"),
    "batch_size": _o("auto", "int", "str", "list"),
    "auto_prob": _o("prob_sys_size", "str", aliases=("auto_prob_style",)),
    "sys_probs": _o(None, "list", "null", aliases=("sys_weights",)),
    "set_prefix": _o("set", "str"),
    "rglob_patterns": _o(None, "list", "null", status="fixed"),
    "min_pair_dist": _o(0.0, *NUM, status="ignored"),
    "drop_bad_frames": _o(False, "bool", doc="drop frames with non-finite values or a zero-volume box (counted "
                                             "in the log and as data/<task>/dropped_frames) instead of refusing them"),
}
VALIDATION_DATA: Schema = {
    **TRAINING_DATA,
    "numb_btch": _o(1, "int", aliases=("numb_batch",)),
    # mtbench's own keys
    "fixed_batches": _o(False, "bool", doc="draw the numb_btch validation batches once (seeded by training.seed) "
                                           "and reuse them at every display, so curves of different jobs are "
                                           "comparable; false: fresh random batches each display (DeePMD-kit)"),
    "final_nframes": _o(None, "int", "null", doc="frames per validation system in the end-of-run evaluation: a "
                                                 "fixed subset shuffled with training.seed (as `mtbench.test -n N "
                                                 "--shuffle-test -r SEED`); null: every frame"),
}

SAMPLING_TYPES: tuple[str, ...] = ("weights", "temperature", "epochs")
SAMPLING: Schema = {
    "type": _o("weights", "str", doc="how a task is drawn each step: weights | temperature | epochs"),
    "temperature": _o(1.0, *NUM, doc="temperature sampling: p ~ weight * n_frames^(1/T)"),
    "epochs": _o(None, "dict", "null", doc="epochs sampling: {task: epochs}; each task trains that many epochs"),
}
DIAGNOSTICS: Schema = {
    "grad_cosine": _o(True, "bool", doc="log per-task descriptor gradient norms and pairwise cosines"),
}

TRAINING: Schema = {
    "numb_steps": _o(REQUIRED, "int", aliases=("stop_batch", "num_step", "num_steps", "numb_step")),
    "seed": _o(None, "int", "null"),
    "disp_file": _o("lcurve.out", "str"),
    "disp_freq": _o(1000, "int"),
    "save_freq": _o(1000, "int"),
    "save_ckpt": _o("model.ckpt", "str"),
    "max_ckpt_keep": _o(5, "int"),
    # mtbench's own keys
    "restart": _o(None, "str", "null", doc="checkpoint to resume from"),
    "init_frz_model": _o(None, "str", "null", doc="frozen model to initialise from"),
    "sampling": _o({"type": "weights"}, "dict", doc="task sampling: {type: weights|temperature|epochs, ...}"),
    "diagnostics": _o({}, "dict", doc="training diagnostics: {grad_cosine: true}"),
    "distributed": _o(OMIT, "str", doc="data-parallel training: none (default) | mirrored (this machine's "
                                       "GPUs) | multi_worker (TF_CONFIG or SLURM; python -m mtbench.launch)"),
    "devices": _o(OMIT, "list", "null", doc="distributed: mirrored: the devices (default every GPU, else CPU)"),
    "collective_timeout": _o(OMIT, *NUM, "null", doc="multi_worker: seconds a step waits for the other workers before "
                                             "it fails naming the missing one (default 300)"),
    "on_nonfinite": _o("stop", "str", doc="a non-finite loss or gradient: stop (the run fails at that step) | "
                                          "skip (the update is skipped, counted as train/<task>/skipped_steps)"),
    # DeePMD-kit keys mtbench does not use
    "numb_epoch": _o(None, *NUM, "null", aliases=("num_epochs", "num_epoch", "numb_epochs"), status="fixed"),
    **{
        k: _o(OMIT, status="ignored")
        for k in (
            "numb_test", "disp_training", "time_training", "disp_avg", "profiling", "profiling_file",
            "enable_profiler", "tensorboard", "tensorboard_log_dir", "tensorboard_freq", "stat_file",
            "stat_file_mode", "mixed_precision", "save_dir", "ckpt_keep_ratio", "enable_ema", "ema_decay",
            "ema_ckpt_keep", "change_bias_after_training", "gradient_max_norm", "acc_freq", "zero_stage",
            "neighbor_graph_method", "enable_compile", "enable_tf32", "opt_type",
        )
    },
}
SINGLE_TASK_TRAINING: Schema = {"task_name": _o("default", "str", doc="name of the single task")}
TRAINING_SECTIONS = ("training_data", "validation_data", "data_dict", "fitting_weight")
"""Keys of ``training`` that normalize handles itself."""

TOP_LEVEL = ("model", "learning_rate", "learning_rate_dict", "loss", "loss_dict", "training")
TOP_LEVEL_IGNORED = ("nvnmd", "optimizer", "validating")
V3_MULTITASK_KEYS = ("model_dict", "shared_dict", "model_prob")

# ------------------------------------------------------------------------------------- lookups

KINDS: dict[str, str] = {"descriptor": "descriptor", "fitting": "fitting net", "loss": "loss",
                         "learning_rate": "learning rate"}
_TABLES: dict[str, dict[str, TypeEntry]] = {
    "descriptor": DESCRIPTORS,
    "fitting": FITTINGS,
    "loss": LOSSES,
    "learning_rate": LEARNING_RATES,
}


def canonical_type(kind: str, name: str) -> str | None:
    """The canonical name of ``name`` (itself or an alias) among ``kind`` types, or None."""
    table = _TABLES[kind]
    if name in table:
        return name
    for entry in table.values():
        if name in entry.aliases:
            return entry.name
    return None


def lookup(kind: str, name: str) -> TypeEntry | None:
    """The registry entry for a type name or alias of ``kind``."""
    canon = canonical_type(kind, name)
    return None if canon is None else _TABLES[kind][canon]


def type_names(kind: str) -> list[str]:
    """Every accepted ``type`` string of ``kind``, canonical names and aliases."""
    return [n for e in _TABLES[kind].values() for n in (e.name, *e.aliases)]


def known_types(kind: str) -> str:
    """Known names of ``kind`` for an error message, e.g. ``se_e2_a (se_a), se_e2_r (se_r)``."""
    parts = []
    for entry in _TABLES[kind].values():
        parts.append(f"{entry.name} ({', '.join(entry.aliases)})" if entry.aliases else entry.name)
    return ", ".join(parts)


def loss_for_fitting(fitting_type: str) -> str:
    """The loss type that trains ``fitting_type`` (ener -> ener, dipole/polar -> tensor)."""
    return FITTINGS[fitting_type].losses[0]
