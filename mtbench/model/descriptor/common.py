"""Plumbing shared by the smooth-edition descriptors: option parsing, the constructor se_e2_a, se_e2_r and se_e3
share (:class:`SmoothDescriptor`), net collections in DeePMD's layout with the nets DeePMD-kit stores but never
evaluates, env-matrix statistics by DeePMD-kit v3's rules."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from mtbench.errors import SpecError
from mtbench.model.descriptor.base import Descriptor, NeighborSpec, gather_pair_mask, pair_exclude_table
from mtbench.model.env_mat import (
    Neighbors,
    env_matrix,
    env_stat_sums,
    env_stat_to_davg_dstd,
)
from mtbench.model.networks import MLP, NetworkCollection, canonical_precision

EMPTY_TYPE_STD = 0.1  # DeePMD-kit v3's std for a centre type absent from the statistics data


def check_sel(sel: Any, ntypes: int, key: str = "model.descriptor.sel") -> list[int]:
    """``sel`` as one non-negative int per type (``auto`` must have been resolved from data before)."""
    if isinstance(sel, str) or not isinstance(sel, Sequence):
        raise SpecError(key, f"expected one neighbour count per type (resolve 'auto' first), got {sel!r}")
    out = [int(s) for s in sel]
    if len(out) != ntypes or any(s < 0 for s in out):
        raise SpecError(key, f"expected {ntypes} non-negative neighbour counts (one per type), got {list(sel)}")
    return out


def symmetric_pairs(pairs: Sequence[Sequence[int]]) -> set[tuple[int, int]]:
    out = set()
    for a, b in pairs:
        out |= {(int(a), int(b)), (int(b), int(a))}
    return out


def net_options(config: dict[str, Any]) -> dict[str, Any]:
    return {"activation_function": config.get("activation_function", "tanh"),
            "resnet_dt": bool(config.get("resnet_dt", False)),
            "precision": canonical_precision(config.get("precision", "float64")),
            "trainable": bool(config.get("trainable", True))}


def zero_network_dict(in_dim: int, neuron: Sequence[int], **kw: Any) -> dict[str, Any]:
    """A serialized embedding net with every weight zero: how DeePMD-kit stores nets it never evaluates."""
    data = MLP.embedding(in_dim, neuron, rng=np.random.default_rng(0), **kw).to_dict()
    for layer in data["layers"]:
        layer["@variables"] = {k: None if v is None else np.zeros_like(v) for k, v in layer["@variables"].items()}
    return data


def collection_dict(coll: NetworkCollection, unused: dict[int, dict[str, Any]]) -> dict[str, Any]:
    data = coll.to_dict()
    for k, net in unused.items():
        data["networks"][k] = net
    return data


def collection_from_dict(data: dict[str, Any], unused: set[int], *, trainable: bool,
                         frozen: set[int] = frozenset()) -> tuple[NetworkCollection, dict[int, dict[str, Any]]]:
    """Nets to evaluate as modules (``frozen`` ones not trainable); the ``unused`` ones kept as plain dicts."""
    nets: list[MLP | None] = []
    kept: dict[int, dict[str, Any]] = {}
    for k, nd in enumerate(data["networks"]):
        if k in unused or nd is None:
            nets.append(None)
            if nd is not None:
                kept[k] = nd
        else:
            nets.append(MLP.from_dict(nd, trainable=False if k in frozen else trainable))
    return NetworkCollection(data["ndim"], data["ntypes"], data.get("network_type", "embedding_network"), nets), kept


def env_mat_dict(rcut: float, rcut_smth: float, protection: float) -> dict[str, Any]:
    return {"rcut": rcut, "rcut_smth": rcut_smth, "protection": protection, "use_exp_switch": False}


def serialized_options(data: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments se_e2_a, se_e2_r and se_e3 read alike from DeePMD-kit's serialized form."""
    var = data["@variables"]
    return {"rcut": data["rcut"], "rcut_smth": data["rcut_smth"], "sel": data["sel"], "neuron": data["neuron"],
            "davg": var["davg"], "dstd": var["dstd"], "resnet_dt": data.get("resnet_dt", False),
            "trainable": data.get("trainable", True), "exclude_types": data.get("exclude_types", []),
            "env_protection": data.get("env_protection", 0.0), "set_davg_zero": data.get("set_davg_zero", False),
            "activation_function": data.get("activation_function", "tanh"),
            "precision": data.get("precision", "float64"), "type_map": data.get("type_map")}


def stat_variables(davg: Any, dstd: Any, ntypes: int, nnei: int, ncol: int) -> tuple[tf.Variable, tf.Variable]:
    """The env-matrix mean and std per centre type and slot, [ntypes, nnei, ncol]: float64, never trained."""
    return tuple(tf.Variable(np.asarray(v, dtype=np.float64).reshape(ntypes, nnei, ncol), trainable=False, name=n)
                 for v, n in ((davg, "davg"), (dstd, "dstd")))


def check_plain(data: dict[str, Any]) -> None:
    if data.get("compress"):
        raise ValueError(f"compressed {data.get('type')} models are not supported; export the uncompressed model")
    if data.get("spin"):
        raise ValueError("spin models are not supported")


def env_stat_sums_over(desc: Any, samples: Iterable[tuple[dict[NeighborSpec, Neighbors], tf.Tensor]], *,
                       radial_only: bool = False,
                       blocks: Callable[[Neighbors], list[Neighbors]] | None = None) -> np.ndarray:
    """Per-centre-type env-matrix sums over the statistics frames, excluded pairs zeroed: [ntypes, 5].

    ``blocks`` splits a neighbour list the way the descriptor evaluates it (se_e2_a's per-type blocks)."""
    spec = desc.neighbor_specs()[0]
    sums = np.zeros((desc.ntypes, 5))
    for neighbors, atype in samples:
        ems = []
        for nb in blocks(neighbors[spec]) if blocks else [neighbors[spec]]:
            em, _ = env_matrix(nb, desc.rcut, desc.rcut_smth, radial_only=radial_only, protection=desc.env_protection)
            if desc.exclude_types:
                keep = gather_pair_mask(desc._excl_table, atype, nb.nei_type)
                em = em * tf.cast(keep[..., None], em.dtype)
            ems.append(em)
        em = ems[0] if len(ems) == 1 else tf.concat(ems, axis=2)
        sums += env_stat_sums(em.numpy(), np.asarray(atype), desc.ntypes)
    return sums


def assign_env_stats(desc: Any, sums: np.ndarray, ncol: int) -> None:
    """Pooled env-matrix sums -> ``desc.davg``/``desc.dstd`` by DeePMD-kit v3's rules.

    A centre type with no atoms in the data gets mean 0 and std 0.1; with ``set_davg_zero`` the mean is left as it
    is (it starts at zero), as the reference does.
    """
    davg, dstd = env_stat_to_davg_dstd(sums, desc.nnei, ncol, set_davg_zero=False, rcut=desc.rcut)
    empty = sums[:, 0] == 0
    davg[empty] = 0.0
    dstd[empty] = EMPTY_TYPE_STD
    if not desc.set_davg_zero:
        desc.davg.assign(davg)
    desc.dstd.assign(dstd)


class SmoothDescriptor(Descriptor):
    """What se_e2_a, se_e2_r and se_e3 share: the constructor's options, one neighbour list of ``sel`` slots per
    neighbour type, env-matrix statistics of ``ncol`` columns per slot and their serialized form.

    A subclass adds its own options (``type_one_side``, ``axis_neuron``, ...) around ``super().__init__``."""

    ncol: ClassVar[int] = 4  # env-matrix columns per slot: 4 (s, s x/r, s y/r, s z/r), 1 radial only

    def __init__(self, *, rcut: float, rcut_smth: float, sel: Sequence[int], neuron: Sequence[int],
                 embeddings: NetworkCollection, davg: np.ndarray, dstd: np.ndarray,
                 unused_nets: dict[int, dict[str, Any]] | None = None, resnet_dt: bool = False,
                 trainable: bool = True, exclude_types: Sequence[Sequence[int]] = (), env_protection: float = 0.0,
                 set_davg_zero: bool = False, activation_function: str = "tanh", precision: str = "float64",
                 type_map: Sequence[str] | None = None, name: str | None = None) -> None:
        super().__init__(name=name)
        self.rcut, self.rcut_smth = float(rcut), float(rcut_smth)
        self.sel = [int(s) for s in sel]
        self.ntypes = len(self.sel)
        self.nnei = sum(self.sel)
        self.sec = np.cumsum([0] + self.sel).tolist()
        self.neuron = [int(n) for n in neuron]
        self.resnet_dt, self.trainable = bool(resnet_dt), bool(trainable)
        self.exclude_types = [list(map(int, p)) for p in exclude_types]
        self.env_protection = float(env_protection)
        self.set_davg_zero = bool(set_davg_zero)
        self.activation_function = activation_function
        self.precision = canonical_precision(precision)
        self.type_map = list(type_map) if type_map is not None else None
        self.embeddings = embeddings
        # nets that are stored but never evaluated (see each descriptor), written back verbatim
        self.unused_nets = dict(unused_nets or {})
        self.davg, self.dstd = stat_variables(davg, dstd, self.ntypes, self.nnei, self.ncol)
        self._excl_table = pair_exclude_table(self.ntypes, self.exclude_types)

    @classmethod
    def input_options(cls, config: dict[str, Any], type_map: Sequence[str], sel: Sequence[int],
                      neuron: Sequence[int]) -> dict[str, Any]:
        """Constructor arguments the three read alike from DeePMD input keys (missing keys: DeePMD's defaults),
        statistics zero mean and unit std."""
        kw = net_options(config)
        shape = (len(type_map), sum(sel), cls.ncol)
        return {"rcut": config.get("rcut", 6.0), "rcut_smth": config.get("rcut_smth", 0.5), "sel": sel,
                "neuron": neuron, "davg": np.zeros(shape), "dstd": np.ones(shape), "resnet_dt": kw["resnet_dt"],
                "trainable": kw["trainable"], "exclude_types": config.get("exclude_types", []),
                "env_protection": config.get("env_protection", 0.0),
                "set_davg_zero": config.get("set_davg_zero", False),
                "activation_function": kw["activation_function"], "precision": kw["precision"],
                "type_map": type_map}

    def neighbor_specs(self) -> list[NeighborSpec]:
        return [NeighborSpec(self.rcut, tuple(self.sel), False)]

    @property
    def dim_emb(self) -> int:
        return self.neuron[-1]

    def stat_dict(self) -> dict[str, np.ndarray]:
        """The serialized ``@variables``: ``davg`` and ``dstd`` in the descriptor's precision."""
        np_dtype = np.dtype(self.precision)
        return {"davg": self.davg.numpy().astype(np_dtype), "dstd": self.dstd.numpy().astype(np_dtype)}
