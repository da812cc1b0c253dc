"""DeePMD's smooth-edition two-body descriptor with angular information (``se_e2_a``, alias ``se_a``).

``T_i = R_i^T G_i / N_s`` from the normalised environment matrix ``R_i`` and the embedding ``G_i = N(s_ij)``; the
descriptor is ``T_i^T T_i^<`` (first ``axis_neuron`` columns), and ``T_i[1:4]`` is the rotation matrix that the
dipole and polarizability fittings contract with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from mtbench.model.descriptor.base import (
    Descriptor,
    DescriptorOutput,
    NeighborSpec,
    gather_pair_mask,
    pair_exclude_table,
    register_descriptor,
)
from mtbench.model.env_mat import (
    Neighbors,
    env_matrix,
    env_stat_sums,
    env_stat_to_davg_dstd,
    normalize_env,
)
from mtbench.model.networks import MLP, NetworkCollection, canonical_precision, tf_dtype


def partition_by_type(x: tf.Tensor, atype_flat: tf.Tensor, ntypes: int) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
    """Split rows of ``x`` by centre type; returns (parts, row indices) for :func:`tf.dynamic_stitch`."""
    rows = tf.range(tf.shape(atype_flat)[0])
    return tf.dynamic_partition(x, atype_flat, ntypes), tf.dynamic_partition(rows, atype_flat, ntypes)


@register_descriptor("se_e2_a")
class DescrptSeA(Descriptor):
    def __init__(self, *, rcut: float, rcut_smth: float, sel: Sequence[int], neuron: Sequence[int],
                 axis_neuron: int, embeddings: NetworkCollection, davg: np.ndarray, dstd: np.ndarray,
                 resnet_dt: bool = False, trainable: bool = True, type_one_side: bool = True,
                 exclude_types: Sequence[Sequence[int]] = (), env_protection: float = 0.0,
                 set_davg_zero: bool = False, activation_function: str = "tanh", precision: str = "float64",
                 type_map: Sequence[str] | None = None, name: str | None = None) -> None:
        super().__init__(name=name)
        self.rcut, self.rcut_smth = float(rcut), float(rcut_smth)
        self.sel = [int(s) for s in sel]
        self.ntypes = len(self.sel)
        self.nnei = sum(self.sel)
        self.neuron = [int(n) for n in neuron]
        self.axis_neuron = int(axis_neuron)
        self.resnet_dt, self.trainable, self.type_one_side = bool(resnet_dt), bool(trainable), bool(type_one_side)
        self.exclude_types = [list(map(int, p)) for p in exclude_types]
        self.env_protection = float(env_protection)
        self.set_davg_zero = bool(set_davg_zero)
        self.activation_function = activation_function
        self.precision = canonical_precision(precision)
        self.type_map = list(type_map) if type_map is not None else None
        self.embeddings = embeddings
        self.davg = tf.Variable(np.asarray(davg, dtype=np.float64).reshape(self.ntypes, self.nnei, 4),
                                trainable=False, name="davg")
        self.dstd = tf.Variable(np.asarray(dstd, dtype=np.float64).reshape(self.ntypes, self.nnei, 4),
                                trainable=False, name="dstd")
        self._excl_table = pair_exclude_table(self.ntypes, self.exclude_types)
        self.sec = np.cumsum([0] + self.sel).tolist()

    # --- construction -------------------------------------------------------------------------------------
    @classmethod
    def build(cls, config: dict[str, Any], type_map: Sequence[str], rng: np.random.Generator) -> "DescrptSeA":
        sel = list(config["sel"])
        ntypes = len(type_map)
        if len(sel) != ntypes:
            raise ValueError(f"model.descriptor.sel has {len(sel)} entries but type_map has {ntypes}")
        one_side = bool(config.get("type_one_side", True))
        ndim = 1 if one_side else 2
        precision = config.get("precision", "float64")
        nets = [MLP.embedding(1, config["neuron"], rng=rng, activation_function=config.get("activation_function",
                                                                                               "tanh"),
                              resnet_dt=config.get("resnet_dt", False), precision=precision,
                              trainable=config.get("trainable", True))
                for _ in range(ntypes ** ndim)]
        nnei = sum(sel)
        return cls(rcut=config["rcut"], rcut_smth=config["rcut_smth"], sel=sel, neuron=config["neuron"],
                   axis_neuron=config["axis_neuron"],
                   embeddings=NetworkCollection(ndim, ntypes, "embedding_network", nets),
                   davg=np.zeros((ntypes, nnei, 4)), dstd=np.ones((ntypes, nnei, 4)),
                   resnet_dt=config.get("resnet_dt", False), trainable=config.get("trainable", True),
                   type_one_side=one_side, exclude_types=config.get("exclude_types", []),
                   env_protection=config.get("env_protection", 0.0),
                   set_davg_zero=config.get("set_davg_zero", False),
                   activation_function=config.get("activation_function", "tanh"), precision=precision,
                   type_map=type_map)

    def to_dict(self) -> dict[str, Any]:
        return {
            "@class": "Descriptor", "type": "se_e2_a", "@version": 2,
            "rcut": self.rcut, "rcut_smth": self.rcut_smth, "sel": list(self.sel), "neuron": list(self.neuron),
            "axis_neuron": self.axis_neuron, "resnet_dt": self.resnet_dt, "trainable": self.trainable,
            "type_one_side": self.type_one_side, "exclude_types": [list(p) for p in self.exclude_types],
            "env_protection": self.env_protection, "set_davg_zero": self.set_davg_zero,
            "activation_function": self.activation_function, "precision": self.precision, "spin": None,
            "env_mat": {"rcut": self.rcut, "rcut_smth": self.rcut_smth, "protection": self.env_protection,
                        "use_exp_switch": False},
            "embeddings": self.embeddings.to_dict(),
            "@variables": {"davg": self.davg.numpy().astype(np.dtype(self.precision)),
                           "dstd": self.dstd.numpy().astype(np.dtype(self.precision))},
            "type_map": self.type_map,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DescrptSeA":
        if data.get("compress"):
            raise ValueError("compressed se_e2_a models are not supported; export the uncompressed model")
        if data.get("spin"):
            raise ValueError("spin models are not supported")
        var = data["@variables"]
        return cls(rcut=data["rcut"], rcut_smth=data["rcut_smth"], sel=data["sel"], neuron=data["neuron"],
                   axis_neuron=data["axis_neuron"],
                   embeddings=NetworkCollection.from_dict(data["embeddings"], trainable=data.get("trainable", True)),
                   davg=var["davg"], dstd=var["dstd"], resnet_dt=data.get("resnet_dt", False),
                   trainable=data.get("trainable", True), type_one_side=data.get("type_one_side", True),
                   exclude_types=data.get("exclude_types", []), env_protection=data.get("env_protection", 0.0),
                   set_davg_zero=data.get("set_davg_zero", False),
                   activation_function=data.get("activation_function", "tanh"),
                   precision=data.get("precision", "float64"), type_map=data.get("type_map"))

    # --- interface ----------------------------------------------------------------------------------------
    def neighbor_specs(self) -> list[NeighborSpec]:
        return [NeighborSpec(self.rcut, tuple(self.sel), False)]

    @property
    def dim_out(self) -> int:
        return self.neuron[-1] * self.axis_neuron

    @property
    def dim_emb(self) -> int:
        return self.neuron[-1]

    def _normalized_env(self, nb: Neighbors, atype: tf.Tensor) -> tf.Tensor:
        em, _ = env_matrix(nb, self.rcut, self.rcut_smth, protection=self.env_protection)
        rr = normalize_env(em, atype, self.davg, self.dstd)
        rr = tf.cast(rr, tf_dtype(self.precision))
        if self.exclude_types:
            keep = gather_pair_mask(self._excl_table, atype, nb.nei_type)
            rr = rr * tf.cast(keep[..., None], rr.dtype)
        return rr

    def _contract(self, rr: tf.Tensor, net_of_block) -> tf.Tensor:
        """sum over slots of ``R_ij^T G_ij`` -> [rows, M1, 4]; ``net_of_block(t)`` is the net for neighbour type t."""
        gr = None
        for tt in range(self.ntypes):
            block = rr[:, self.sec[tt]:self.sec[tt + 1], :]  # [rows, sel_t, 4]
            net = net_of_block(tt)
            if net is None:
                continue
            gg = net(block[..., :1])  # [rows, sel_t, M1]
            term = tf.matmul(gg, block, transpose_a=True)  # [rows, M1, 4]
            gr = term if gr is None else gr + term
        if gr is None:
            rows = tf.shape(rr)[0]
            gr = tf.zeros([rows, self.neuron[-1], 4], dtype=rr.dtype)
        return gr

    def __call__(self, neighbors: dict[NeighborSpec, Neighbors], atype: tf.Tensor) -> DescriptorOutput:
        nb = neighbors[self.neighbor_specs()[0]]
        rr = self._normalized_env(nb, atype)
        shape = tf.shape(rr)
        nf, nloc = shape[0], shape[1]
        rr_flat = tf.reshape(rr, [-1, self.nnei, 4])
        if self.type_one_side:
            gr = self._contract(rr_flat, lambda tt: self.embeddings.get(tt))
        else:
            atype_flat = tf.reshape(atype, [-1])
            parts, rows = partition_by_type(rr_flat, atype_flat, self.ntypes)
            grs = [self._contract(parts[ti], lambda tt, ti=ti: self.embeddings.get(ti, tt))
                   for ti in range(self.ntypes)]
            gr = tf.dynamic_stitch(rows, grs)
        gr = gr / tf.cast(self.nnei, gr.dtype)
        gr = tf.reshape(gr, [nf, nloc, self.neuron[-1], 4])
        gr1 = gr[:, :, : self.axis_neuron, :]
        grrg = tf.matmul(gr, gr1, transpose_b=True)  # [nf, nloc, M1, axis]
        desc = tf.reshape(grrg, [nf, nloc, self.neuron[-1] * self.axis_neuron])
        return DescriptorOutput(tf.cast(desc, tf.float64), tf.cast(gr[..., 1:], tf.float64))

    def compute_input_stats(self, samples: Sequence[tuple[dict[NeighborSpec, Neighbors], tf.Tensor]]) -> None:
        spec = self.neighbor_specs()[0]
        sums = np.zeros((self.ntypes, 5))
        for neighbors, atype in samples:
            nb = neighbors[spec]
            em, _ = env_matrix(nb, self.rcut, self.rcut_smth, protection=self.env_protection)
            if self.exclude_types:
                keep = gather_pair_mask(self._excl_table, atype, nb.nei_type)
                em = em * tf.cast(keep[..., None], em.dtype)
            sums += env_stat_sums(em.numpy(), np.asarray(atype), self.ntypes)
        davg, dstd = env_stat_to_davg_dstd(sums, self.nnei, 4, set_davg_zero=self.set_davg_zero, rcut=self.rcut)
        self.davg.assign(davg)
        self.dstd.assign(dstd)
