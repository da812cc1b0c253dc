"""DeePMD's three-body embedding descriptor (``se_e3``; aliases ``se_at``, ``se_a_3be``, ``se_t``).

For every pair of neighbour types ``t1 <= t2`` the angular products ``theta_jk = R_ij . R_ik`` of the normalised
directional rows (``j`` in the slots of ``t1``, ``k`` in those of ``t2``) go through one embedding net, and
``D_i = sum_{t1<=t2} 1/(sel_t1 sel_t2) sum_jk theta_jk N_t1t2(theta_jk)``. No rotation matrix: energy fittings
only.

The numbers are those of DeePMD-kit v3's NumPy reference (``deepmd.dpmodel`` DescrptSeT). Its serialized dict holds
``ntypes**2`` nets; those with ``t1 > t2`` are never evaluated and DeePMD-kit writes them zeroed, as it does for the
nets of excluded type pairs -- which it does evaluate (for centres of a third type), so a zeroed net there makes
that block contribute nothing. mtbench builds those nets zeroed and keeps them frozen, so a model and its DeePMD-kit
round trip always agree.
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


@register_descriptor("se_e3")
class DescrptSeT(SmoothDescriptor):
    """``unused_nets`` (a :class:`SmoothDescriptor` option): the t1 > t2 nets, written back verbatim."""

    # --- construction -------------------------------------------------------------------------------------
    @staticmethod
    def _roles(ntypes: int, excluded: set[tuple[int, int]]) -> tuple[set[int], set[int]]:
        """Collection indices of the nets never evaluated (t1 > t2) and of the zeroed, frozen ones (excluded)."""
        unused, frozen = set(), set()
        for t2 in range(ntypes):
            for t1 in range(ntypes):
                k = t1 + t2 * ntypes
                if t1 > t2:
                    unused.add(k)
                elif (t1, t2) in excluded:
                    frozen.add(k)
        return unused, frozen

    @classmethod
    def build(cls, config: dict[str, Any], type_map: Sequence[str], rng: np.random.Generator) -> DescrptSeT:
        """Fresh descriptor from DeePMD input keys (missing keys take DeePMD's input defaults)."""
        ntypes = len(type_map)
        sel = check_sel(config.get("sel"), ntypes)
        neuron = list(config.get("neuron", [10, 20, 40]))
        kw = net_options(config)
        unused_idx, frozen_idx = cls._roles(ntypes, symmetric_pairs(config.get("exclude_types", [])))
        nets: list[MLP | None] = []
        unused: dict[int, dict[str, Any]] = {}
        for k in range(ntypes ** 2):
            if k in unused_idx:
                nets.append(None)
                unused[k] = zero_network_dict(1, neuron, **kw)
            elif k in frozen_idx:
                nets.append(MLP.from_dict(zero_network_dict(1, neuron, **kw), trainable=False))
            else:
                nets.append(MLP.embedding(1, neuron, rng=rng, **kw))
        return cls(embeddings=NetworkCollection(2, ntypes, "embedding_network", nets), unused_nets=unused,
                   **cls.input_options(config, type_map, sel, neuron))

    def to_dict(self) -> dict[str, Any]:
        embeddings = collection_dict(self.embeddings, self.unused_nets)
        _, frozen = self._roles(self.ntypes, symmetric_pairs(self.exclude_types))
        for k in frozen:  # frozen here only; in the file they carry the descriptor's flag, as DeePMD writes them
            for layer in embeddings["networks"][k]["layers"]:
                layer["trainable"] = self.trainable
        return {
            "@class": "Descriptor", "type": "se_e3", "@version": 2,
            "rcut": self.rcut, "rcut_smth": self.rcut_smth, "sel": list(self.sel), "neuron": list(self.neuron),
            "resnet_dt": self.resnet_dt, "set_davg_zero": self.set_davg_zero,
            "activation_function": self.activation_function, "precision": self.precision,
            "embeddings": embeddings,
            "env_mat": env_mat_dict(self.rcut, self.rcut_smth, self.env_protection),
            "exclude_types": [list(p) for p in self.exclude_types], "env_protection": self.env_protection,
            "@variables": self.stat_dict(),
            "type_map": self.type_map, "trainable": self.trainable,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DescrptSeT:
        check_plain(data)
        ntypes = len(data["sel"])
        unused_idx, frozen_idx = cls._roles(ntypes, symmetric_pairs(data.get("exclude_types", [])))
        embeddings, unused = collection_from_dict(data["embeddings"], unused_idx,
                                                  trainable=data.get("trainable", True), frozen=frozen_idx)
        return cls(embeddings=embeddings, unused_nets=unused, **serialized_options(data))

    # --- interface ----------------------------------------------------------------------------------------
    @property
    def dim_out(self) -> int:
        return self.neuron[-1]

    @property
    def has_rot_mat(self) -> bool:
        return False

    def __call__(self, neighbors: dict[NeighborSpec, Neighbors], atype: tf.Tensor) -> DescriptorOutput:
        nb = neighbors[self.neighbor_specs()[0]]
        em, _ = env_matrix(nb, self.rcut, self.rcut_smth, protection=self.env_protection)
        rr = tf.cast(normalize_env(em, atype, self.davg, self.dstd), tf_dtype(self.precision))
        shape = tf.shape(rr)
        nf, nloc = shape[0], shape[1]
        ang = rr[..., 1:]
        if self.exclude_types:
            keep = gather_pair_mask(self._excl_table, atype, nb.nei_type)
            ang = ang * tf.cast(keep[..., None], ang.dtype)
        ang = tf.reshape(ang, [-1, self.nnei, 3])
        total = tf.zeros([tf.shape(ang)[0], self.neuron[-1]], dtype=ang.dtype)
        for t1 in range(self.ntypes):
            for t2 in range(t1, self.ntypes):
                net = self.embeddings.get(t1, t2)
                if net is None or self.sel[t1] == 0 or self.sel[t2] == 0:
                    continue
                a1 = ang[:, self.sec[t1]:self.sec[t1 + 1], :]
                a2 = ang[:, self.sec[t2]:self.sec[t2 + 1], :]
                theta = tf.matmul(a1, a2, transpose_b=True)  # [rows, sel_t1, sel_t2]
                gg = net(theta[..., None])  # [rows, sel_t1, sel_t2, M]
                part = tf.einsum("rjk,rjkm->rm", theta, gg)
                total = total + part / tf.constant(self.sel[t1] * self.sel[t2], part.dtype)
        desc = tf.reshape(total, [nf, nloc, self.neuron[-1]])
        return DescriptorOutput(tf.cast(desc, tf.float64), None)

    def compute_input_stats(self, samples: Sequence[tuple[dict[NeighborSpec, Neighbors], tf.Tensor]]) -> None:
        sums = env_stat_sums_over(self, samples)
        assign_env_stats(self, sums, ncol=4)
