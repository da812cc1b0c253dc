"""Concatenation of descriptors (``hybrid``): sub-descriptor outputs side by side, in list order.

Neighbour lists follow DeePMD-kit v3's NumPy reference (``deepmd.dpmodel`` DescrptHybrid): the model builds **one**
list, with the largest ``rcut`` and, per type, the largest ``sel`` of the sub-descriptors, and every sub-descriptor
reads the first ``sel_k[t]`` slots of each type block of it. That differs from a list of its own in two cases:

* when a frame has more neighbours than the merged ``sel`` allows, the list keeps the nearest ``sum(sel)``
  neighbours before splitting them by type, so which neighbours a sub-descriptor sees depends on the merged list;
* a sub-descriptor with a smaller ``rcut`` also sees the neighbours between its ``rcut`` and the merged one. Their
  switch is zero, so they weigh like padding slots -- except for excluded type pairs, which the exclusion mask sets
  to zero where a padding slot would hold ``-davg/dstd``.

mtbench reproduces this exactly by asking the data layer for the merged list only (``neighbor_specs``) and cutting
it for each sub-descriptor. When a sub-descriptor mixes types (se_atten), the merged list is one block sorted by
distance (``sel`` = the largest slot count) and the other sub-descriptors get it split by type first.
Statistics, as in the reference, use each sub-descriptor's own list when the samples carry it
(``stat_neighbor_specs``), else the cut of the merged one (the same unless a statistics frame overflows ``sel``).

No rotation matrix: hybrid models pair with energy fittings only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from mtbench.errors import SpecError
from mtbench.model.descriptor.base import (
    Descriptor,
    DescriptorOutput,
    NeighborSpec,
    build_descriptor,
    descriptor_from_dict,
    register_descriptor,
)
from mtbench.model.env_mat import Neighbors


def split_by_type(nb: Neighbors, sel: Sequence[int], ntypes: int) -> Neighbors:
    """A distance-sorted mixed list -> per-type blocks of ``sel[t]`` slots, distance order kept in each block."""
    nnei = int(nb.mask.shape[-1])
    slot = tf.range(nnei, dtype=tf.int32)
    big = tf.constant(nnei, tf.int32)
    rij, mask, types = [], [], []
    for t, s in enumerate(sel):
        is_t = tf.logical_and(nb.mask, tf.equal(nb.nei_type, t))
        key = tf.sort(tf.where(is_t, slot, big), axis=-1)
        if s > nnei:
            key = tf.concat([key, tf.fill(tf.concat([tf.shape(key)[:-1], [s - nnei]], 0), big)], axis=-1)
        src = key[..., :s]
        ok = src < big
        safe = tf.minimum(src, nnei - 1) if nnei else src
        rij.append(tf.where(ok[..., None], tf.gather(nb.rij, safe, batch_dims=2), tf.zeros_like(nb.rij[..., :1, :])))
        mask.append(ok)
        types.append(tf.where(ok, tf.fill(tf.shape(src), t), tf.fill(tf.shape(src), ntypes)))
    return Neighbors(tf.concat(rij, axis=2), tf.concat(mask, axis=2),
                     tf.cast(tf.concat(types, axis=2), nb.nei_type.dtype))


def take_slots(nb: Neighbors, slots: np.ndarray) -> Neighbors:
    return Neighbors(tf.gather(nb.rij, slots, axis=2), tf.gather(nb.mask, slots, axis=2),
                     tf.gather(nb.nei_type, slots, axis=2))


@register_descriptor("hybrid")
class DescrptHybrid(Descriptor):
    def __init__(self, descriptors: Sequence[Descriptor], name: str | None = None) -> None:
        super().__init__(name=name)
        if not descriptors:
            raise SpecError("model.descriptor.list", "hybrid needs at least one sub-descriptor")
        self.descriptors = list(descriptors)
        for k, d in enumerate(self.descriptors):
            if isinstance(d, DescrptHybrid):
                raise SpecError(f"model.descriptor.list[{k}].type", "hybrid descriptors cannot be nested")
            if len(d.neighbor_specs()) != 1:
                raise ValueError(f"hybrid: sub-descriptor {k} ({d.type_name}) needs one neighbour list")
            if d.ntypes != self.descriptors[0].ntypes:
                raise SpecError(f"model.descriptor.list[{k}].sel",
                                f"{d.ntypes} types, but list[0] has {self.descriptors[0].ntypes}")
        self.ntypes = self.descriptors[0].ntypes
        self.type_map = self.descriptors[0].type_map
        subs = [d.neighbor_specs()[0] for d in self.descriptors]
        self.rcut = max(s.rcut for s in subs)
        self._mixed = any(s.mixed_types for s in subs)
        # tuples, not lists: tf.Module would wrap lists in trackable wrappers
        if self._mixed:
            self.sel = (max(s.nnei for s in subs),)
            plain = [s.sel for s in subs if not s.mixed_types]
            self.sel_by_type = tuple(np.max(plain, axis=0).tolist()) if plain else None
        else:
            self.sel = tuple(np.max([s.sel for s in subs], axis=0).tolist())
            self.sel_by_type = None
        # per sub-descriptor: its slots in the merged list (after the split by type, if any)
        slots = []
        for s in subs:
            block = self.sel if s.mixed_types == self._mixed else self.sel_by_type
            starts = np.cumsum((0,) + tuple(block))[:-1]
            slots.append(np.concatenate([np.arange(a, a + n) for a, n in zip(starts, s.sel)]).astype(np.int32))
        self._slots = tuple(slots)
        self._split_first = tuple(self._mixed and not s.mixed_types for s in subs)

    # --- construction -------------------------------------------------------------------------------------
    @classmethod
    def build(cls, config: dict[str, Any], type_map: Sequence[str], rng: np.random.Generator) -> DescrptHybrid:
        subs = config.get("list")
        if not isinstance(subs, Sequence) or isinstance(subs, str) or not subs:
            raise SpecError("model.descriptor.list", "hybrid needs a non-empty list of sub-descriptor dicts")
        for k, sub in enumerate(subs):
            if not isinstance(sub, dict) or "type" not in sub:
                raise SpecError(f"model.descriptor.list[{k}]", "expected a descriptor dict with a 'type'")
            if sub["type"] == "hybrid":
                raise SpecError(f"model.descriptor.list[{k}].type", "hybrid descriptors cannot be nested")
        return cls([build_descriptor(sub, type_map, rng) for sub in subs])

    def to_dict(self) -> dict[str, Any]:
        return {"@class": "Descriptor", "type": "hybrid", "@version": 1,
                "list": [d.to_dict() for d in self.descriptors]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DescrptHybrid:
        return cls([descriptor_from_dict(sub) for sub in data["list"]])

    def config(self) -> dict[str, Any]:
        return {"type": "hybrid", "list": [{**d.config(), "type": d.type_name} for d in self.descriptors]}

    # --- interface ----------------------------------------------------------------------------------------
    def neighbor_specs(self) -> list[NeighborSpec]:
        return [NeighborSpec(self.rcut, tuple(self.sel), self._mixed)]

    def stat_neighbor_specs(self) -> list[NeighborSpec]:
        """The lists statistics are computed on in DeePMD-kit: each sub-descriptor's own (merged one first)."""
        return list(dict.fromkeys(self.neighbor_specs() + [d.neighbor_specs()[0] for d in self.descriptors]))

    @property
    def dim_out(self) -> int:
        return sum(d.dim_out for d in self.descriptors)

    @property
    def dim_emb(self) -> int:
        return sum(d.dim_emb for d in self.descriptors)

    @property
    def has_rot_mat(self) -> bool:
        """Every sub-descriptor has one: they are concatenated along the embedding axis, as ``dim_emb`` is."""
        return all(d.has_rot_mat for d in self.descriptors)

    @property
    def mixed_types(self) -> bool:
        return self._mixed

    def sub_neighbors(self, nb: Neighbors) -> list[dict[NeighborSpec, Neighbors]]:
        """The merged list cut into each sub-descriptor's view, keyed by the sub-descriptor's own spec."""
        split = split_by_type(nb, self.sel_by_type, self.ntypes) if any(self._split_first) else None
        out = []
        for d, slots, first in zip(self.descriptors, self._slots, self._split_first):
            source = split if first else nb
            if len(slots) == int(source.mask.shape[-1]) and np.array_equal(slots, np.arange(len(slots))):
                view = source
            else:
                view = take_slots(source, slots)
            out.append({d.neighbor_specs()[0]: view})
        return out

    def __call__(self, neighbors: dict[NeighborSpec, Neighbors], atype: tf.Tensor) -> DescriptorOutput:
        nb = neighbors[self.neighbor_specs()[0]]
        outs = [d(view, atype) for d, view in zip(self.descriptors, self.sub_neighbors(nb))]
        rot = tf.concat([o.rot_mat for o in outs], axis=-2) if self.has_rot_mat else None
        return DescriptorOutput(tf.concat([o.descriptor for o in outs], axis=-1), rot)

    def compute_input_stats(self, samples: Sequence[tuple[dict[NeighborSpec, Neighbors], tf.Tensor]]) -> None:
        merged = self.neighbor_specs()[0]
        per_sub: list[list] = [[] for _ in self.descriptors]
        for neighbors, atype in samples:
            views = self.sub_neighbors(neighbors[merged]) if merged in neighbors else None
            for k, d in enumerate(self.descriptors):
                own = d.neighbor_specs()[0]
                per_sub[k].append(({own: neighbors[own]} if own in neighbors else views[k], atype))
        for d, subs in zip(self.descriptors, per_sub):
            d.compute_input_stats(subs)
