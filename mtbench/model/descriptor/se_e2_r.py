"""DeePMD's smooth-edition two-body radial descriptor (``se_e2_r``, alias ``se_r``).

Each neighbour slot gets an embedding ``G_ij = N(s_ij)`` of its normalised smooth inverse distance; the descriptor is
``D_i = 0.2 * sum_j G_ij / N_s``, the mean over all ``N_s = sum(sel)`` slots (padding included) times 1/5. There is
no rotation matrix: the descriptor only pairs with energy fittings.

The numbers are those of DeePMD-kit v3's NumPy reference (``deepmd.dpmodel`` DescrptSeR). With
``type_one_side: true`` (one net per neighbour type) excluded pairs feed a zero input to the net, so they still add
``N(0)``, exactly as the reference. ``type_one_side: false`` (one net per centre and neighbour type; the DeePMD input
default) is not implemented by the NumPy reference; it follows DeePMD-kit's TensorFlow code instead: an excluded
(centre, neighbour) type pair adds nothing, and its net is stored zeroed, as DeePMD-kit serializes it.

The constructor and the small helpers it shares with se_e2_a and se_e3 are in :mod:`.common`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from mtbench.model.descriptor.base import (
    DescriptorOutput,
    NeighborSpec,
    gather_pair_mask,
    partition_by_type,
    register_descriptor,
)
from mtbench.model.descriptor.common import (
    SmoothDescriptor,
    assign_env_stats,
    check_plain,
    check_sel,
    collection_dict,
    collection_from_dict,
    env_mat_dict,
    env_stat_sums_over,
    net_options,
    serialized_options,
    symmetric_pairs,
    zero_network_dict,
)
from mtbench.model.env_mat import Neighbors, env_matrix, normalize_env
from mtbench.model.networks import MLP, NetworkCollection, tf_dtype

RADIAL_RESCALE = 0.2  # DeePMD's ``res_rescale`` of se_e2_r


@register_descriptor("se_e2_r")
class DescrptSeR(SmoothDescriptor):
    serial_type = "se_r"  # the name DeePMD-kit writes in its serialized dict
    ncol = 1  # radial only

    def __init__(self, *, type_one_side: bool = True, **options: Any) -> None:
        """``options``: :class:`SmoothDescriptor`'s; ``unused_nets`` are the nets of excluded pairs of the two-side
        form."""
        super().__init__(**options)
        self.type_one_side = bool(type_one_side)
        self._excluded = symmetric_pairs(self.exclude_types)

    # --- construction -------------------------------------------------------------------------------------
    @classmethod
    def build(cls, config: dict[str, Any], type_map: Sequence[str], rng: np.random.Generator) -> DescrptSeR:
        """Fresh descriptor from DeePMD input keys (missing keys take DeePMD's input defaults)."""
        ntypes = len(type_map)
        sel = check_sel(config.get("sel"), ntypes)
        neuron = list(config.get("neuron", [10, 20, 40]))
        one_side = bool(config.get("type_one_side", False))
        excluded = symmetric_pairs(config.get("exclude_types", []))
        kw = net_options(config)
        nets: list[MLP | None] = []
        unused: dict[int, dict[str, Any]] = {}
        if one_side:
            nets = [MLP.embedding(1, neuron, rng=rng, **kw) for _ in range(ntypes)]
        else:
            coll = NetworkCollection(2, ntypes, "embedding_network", [None] * ntypes ** 2)
            nets = [None] * ntypes ** 2
            for tt in range(ntypes):  # neighbour type outer, centre type inner: the collection's index order
                for ti in range(ntypes):
                    k = coll.index(ti, tt)
                    if (ti, tt) in excluded:
                        unused[k] = zero_network_dict(1, neuron, **kw)
                    else:
                        nets[k] = MLP.embedding(1, neuron, rng=rng, **kw)
        return cls(embeddings=NetworkCollection(1 if one_side else 2, ntypes, "embedding_network", nets),
                   unused_nets=unused, type_one_side=one_side, **cls.input_options(config, type_map, sel, neuron))

    def to_dict(self) -> dict[str, Any]:
        return {
            "@class": "Descriptor", "type": self.serial_type, "@version": 2,
            "rcut": self.rcut, "rcut_smth": self.rcut_smth, "sel": list(self.sel), "neuron": list(self.neuron),
            "resnet_dt": self.resnet_dt, "trainable": self.trainable, "type_one_side": self.type_one_side,
            "exclude_types": [list(p) for p in self.exclude_types], "env_protection": self.env_protection,
            "set_davg_zero": self.set_davg_zero, "activation_function": self.activation_function,
            "precision": self.precision, "spin": None,
            "env_mat": env_mat_dict(self.rcut, self.rcut_smth, self.env_protection),
            "embeddings": collection_dict(self.embeddings, self.unused_nets),
            "@variables": self.stat_dict(),
            "type_map": self.type_map,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DescrptSeR:
        check_plain(data)
        one_side = bool(data.get("type_one_side", True))
        excluded = symmetric_pairs(data.get("exclude_types", []))
        ntypes = len(data["sel"])
        skip = set()
        if not one_side:
            skip = {ti + tt * ntypes for ti, tt in excluded}
        embeddings, unused = collection_from_dict(data["embeddings"], skip, trainable=data.get("trainable", True))
        return cls(embeddings=embeddings, unused_nets=unused, type_one_side=one_side, **serialized_options(data))

    # --- interface ----------------------------------------------------------------------------------------
    @property
    def dim_out(self) -> int:
        return self.neuron[-1]

    @property
    def has_rot_mat(self) -> bool:
        return False

    def _sum_embeddings(self, rr: tf.Tensor, net_of_block) -> tf.Tensor:
        """``sum_j G_ij`` over the slots of every neighbour type with a net: [rows, M]."""
        total = None
        for tt in range(self.ntypes):
            net = net_of_block(tt)
            if net is None or self.sel[tt] == 0:
                continue
            gg = net(rr[:, self.sec[tt]:self.sec[tt + 1], :])  # [rows, sel_t, M]
            part = tf.reduce_sum(gg, axis=1)
            total = part if total is None else total + part
        if total is None:
            total = tf.zeros([tf.shape(rr)[0], self.neuron[-1]], dtype=rr.dtype)
        return total

    def __call__(self, neighbors: dict[NeighborSpec, Neighbors], atype: tf.Tensor) -> DescriptorOutput:
        nb = neighbors[self.neighbor_specs()[0]]
        em, _ = env_matrix(nb, self.rcut, self.rcut_smth, radial_only=True, protection=self.env_protection)
        rr = tf.cast(normalize_env(em, atype, self.davg, self.dstd), tf_dtype(self.precision))
        shape = tf.shape(rr)
        nf, nloc = shape[0], shape[1]
        if self.type_one_side:
            if self.exclude_types:
                keep = gather_pair_mask(self._excl_table, atype, nb.nei_type)
                rr = rr * tf.cast(keep[..., None], rr.dtype)
            total = self._sum_embeddings(tf.reshape(rr, [-1, self.nnei, 1]), lambda tt: self.embeddings.get(tt))
        else:
            parts, rows = partition_by_type(tf.reshape(rr, [-1, self.nnei, 1]), tf.reshape(atype, [-1]),
                                            self.ntypes)
            total = tf.dynamic_stitch(rows, [
                self._sum_embeddings(parts[ti], lambda tt, ti=ti: None if (ti, tt) in self._excluded
                                     else self.embeddings.get(ti, tt))
                for ti in range(self.ntypes)])
        desc = total * tf.constant(RADIAL_RESCALE / self.nnei, total.dtype)  # (tf.cast would round via float32)
        return DescriptorOutput(tf.cast(tf.reshape(desc, [nf, nloc, self.neuron[-1]]), tf.float64), None)

    def compute_input_stats(self, samples: Sequence[tuple[dict[NeighborSpec, Neighbors], tf.Tensor]]) -> None:
        sums = env_stat_sums_over(self, samples, radial_only=True)
        assign_env_stats(self, sums, ncol=1)
