"""The multi-task model: one shared descriptor, one head (fitting net + output statistics) per task.

``predict`` gives energies/forces/virials for energy heads and atomic/global tensors for dipole and
polarizability heads. Forces and virials come from one gradient of the energy with respect to the pair vectors
``r_ij`` (DeePMD's prod_force/prod_virial, written with autodiff): ``F = -dE/dx`` and
``virial = -sum_ij (dE/dr_ij) (x) r_ij``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from mtbench.model.descriptor import Descriptor, NeighborSpec, build_descriptor, descriptor_from_dict
from mtbench.model.env_mat import Neighbors, neighbor_types, pair_vectors
from mtbench.model.fitting import Fitting, SharedLayers, fitting_class

HEAD_KINDS = {"ener": "ener", "dipole": "dipole", "polar": "polar"}
OUT_DIM = {"ener": 1, "dipole": 3, "polar": 9}

NlistInputs = Mapping[NeighborSpec, tuple[tf.Tensor, tf.Tensor]]  # spec -> (idx [nf,N,nnei], shift [nf,N,nnei,3])


class Head(tf.Module):
    """A fitting net plus DeePMD's atomic-model output statistics (``out_bias``/``out_std``)."""

    def __init__(self, fitting: Fitting, *, out_bias: np.ndarray | None = None, out_std: np.ndarray | None = None,
                 atom_exclude_types: Sequence[int] = (), rcond: float | None = None,
                 preset_out_bias: Any = None, name: str | None = None) -> None:
        super().__init__(name=name)
        self.fitting = fitting
        self.kind = fitting.type_name
        odim = OUT_DIM[self.kind]
        nt = fitting.ntypes
        self.out_bias = tf.Variable(np.zeros((1, nt, odim)) if out_bias is None
                                    else np.asarray(out_bias, np.float64).reshape(1, nt, odim),
                                    trainable=False, name="out_bias")
        self.out_std = tf.Variable(np.ones((1, nt, odim)) if out_std is None
                                   else np.asarray(out_std, np.float64).reshape(1, nt, odim),
                                   trainable=False, name="out_std")
        self.atom_exclude_types = [int(t) for t in atom_exclude_types]
        self.rcond = rcond
        self.preset_out_bias = preset_out_bias

    def atomic(self, descriptor: tf.Tensor, rot_mat: tf.Tensor | None, atype: tf.Tensor,
               fparam: tf.Tensor | None, aparam: tf.Tensor | None) -> tf.Tensor:
        """Per-atom output [nf, nloc, odim] with the output bias applied and excluded atoms zeroed."""
        out = self.fitting(descriptor, rot_mat, atype, fparam, aparam)
        bias = self.out_bias[0]  # [ntypes, odim]
        if self.kind == "ener":
            out = out + tf.gather(bias, atype)
        elif self.kind == "polar" and self.fitting.shift_diag:
            diag = tf.reduce_mean(tf.linalg.diag_part(tf.reshape(bias, [-1, 3, 3])), axis=-1)  # [ntypes]
            shift = tf.gather(diag, atype)[..., None] * tf.gather(self.fitting.scale, atype)  # [nf, nloc, 1]
            out = out + shift * tf.reshape(tf.eye(3, dtype=out.dtype), [1, 1, 9])
        excluded = self.zero_types()
        if excluded:
            keep = tf.constant([0.0 if t in excluded else 1.0 for t in range(self.fitting.ntypes)], tf.float64)
            out = out * tf.gather(keep, atype)[..., None]
        return out

    def zero_types(self) -> set[int]:
        """Atom types whose atomic output is exactly zero: ``atom_exclude_types``, and for tensor heads the types
        outside ``sel_type`` (a polar head's get no diagonal shift either, as exported; an energy head's still get
        ``out_bias``)."""
        excluded = set(self.atom_exclude_types)
        if self.kind != "ener":
            excluded |= set(self.fitting.exclude_types)
        return excluded

    def atomic_dict(self) -> dict[str, Any]:
        return {"atom_exclude_types": list(self.atom_exclude_types), "pair_exclude_types": [],
                "rcond": self.rcond, "preset_out_bias": self.preset_out_bias,
                "@variables": {"out_bias": self.out_bias.numpy(), "out_std": self.out_std.numpy()}}


class MultiTaskModel(tf.Module):
    """Shared descriptor + named heads. Heads share fitting layers where their ``layer_name`` entries agree."""

    def __init__(self, type_map: Sequence[str], descriptor: Descriptor, heads: Mapping[str, Head],
                 name: str | None = None) -> None:
        super().__init__(name=name)
        self.type_map = list(type_map)
        self.ntypes = len(self.type_map)
        self.descriptor = descriptor
        self.heads = dict(heads)

    # --- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, type_map: Sequence[str], descriptor_cfg: dict[str, Any],
                    fitting_cfgs: Mapping[str, dict[str, Any]], seed: int | None = None) -> "MultiTaskModel":
        """Fresh model from the spec's ``model`` section (multi-task: ``fitting_net_dict``)."""
        rng = np.random.default_rng(seed)
        descriptor = build_descriptor(descriptor_cfg, type_map, rng)
        shared: SharedLayers = {}
        heads = {}
        for task, cfg in fitting_cfgs.items():
            kind = cfg.get("type", "ener")
            fit_rng = np.random.default_rng(None if seed is None else [seed, len(heads) + 1])
            fitting = fitting_class(kind).build(cfg, ntypes=len(type_map), dim_descrpt=descriptor.dim_out,
                                                dim_emb=descriptor.dim_emb, mixed_types=descriptor.mixed_types,
                                                rng=fit_rng, shared=shared, type_map=type_map)
            heads[task] = Head(fitting, name=task)
        return cls(type_map, descriptor, heads)

    def to_dict(self) -> dict[str, Any]:
        return {"@class": "MTBenchModel", "@version": 1, "type_map": list(self.type_map),
                "descriptor": self.descriptor.to_dict(),
                "heads": {task: {"fitting": h.fitting.to_dict(), **h.atomic_dict()}
                          for task, h in self.heads.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MultiTaskModel":
        descriptor = descriptor_from_dict(data["descriptor"])
        shared: SharedLayers = {}
        heads = {}
        for task, hd in data["heads"].items():
            fitting = fitting_class(hd["fitting"]["type"]).from_dict(hd["fitting"], shared)
            var = hd.get("@variables", {})
            heads[task] = Head(fitting, out_bias=var.get("out_bias"), out_std=var.get("out_std"),
                               atom_exclude_types=hd.get("atom_exclude_types", []), rcond=hd.get("rcond"),
                               preset_out_bias=hd.get("preset_out_bias"), name=task)
        return cls(data["type_map"], descriptor, heads)

    def head_model_dict(self, task: str) -> dict[str, Any]:
        """One head as DeePMD-kit's standard model dict (descriptor + fitting + output statistics)."""
        head = self.heads[task]
        atomic = head.atomic_dict()
        return {"type_map": list(self.type_map), **atomic, "@class": "Model", "type": "standard",
                "@version": 2, "descriptor": self.descriptor.to_dict(),
                "fitting": head.fitting.to_dict(for_deepmd=True)}

    # --- evaluation ---------------------------------------------------------------------------------------
    def neighbor_specs(self) -> list[NeighborSpec]:
        return list(dict.fromkeys(self.descriptor.neighbor_specs()))

    def trainable_variables_of(self, task: str) -> list[tf.Variable]:
        """Variables one step on ``task`` updates: the descriptor's and this head's (shared layers once)."""
        seen: dict[int, tf.Variable] = {}
        for v in (*self.descriptor.trainable_variables, *self.heads[task].trainable_variables):
            seen.setdefault(id(v), v)
        return list(seen.values())

    def stat_neighbor_specs(self) -> list[NeighborSpec]:
        """Lists the descriptor statistics are computed on (a hybrid's sub-descriptors use their own)."""
        fn = getattr(self.descriptor, "stat_neighbor_specs", None)
        return list(dict.fromkeys(fn() if fn else self.neighbor_specs()))

    def _neighbors(self, coord: tf.Tensor, box: tf.Tensor, atype: tf.Tensor, nlists: NlistInputs,
                   specs: list[NeighborSpec] | None = None,
                   rows: tf.Tensor | None = None) -> dict[NeighborSpec, Neighbors | list[Neighbors]]:
        """Pair vectors per neighbour list; per type block (a list) for descriptors that ask for blocks.

        Blocks let a per-neighbour-type descriptor (se_e2_a) work on separate tensors instead of slicing one
        big tensor and padding its gradient back, which is a sizeable part of a training step. ``rows`` [nf, M]
        (atom indices) limits the centres to those atoms, in that order (:func:`output_rows`).
        """
        out: dict[NeighborSpec, Neighbors | list[Neighbors]] = {}
        blocked = getattr(self.descriptor, "neighbor_blocks", False)
        for spec in nlists if specs is None else specs:
            idx, shift = nlists[spec]
            if rows is not None:
                idx, shift = tf.gather(idx, rows, batch_dims=1), tf.gather(shift, rows, batch_dims=1)
            if blocked and not spec.mixed_types:
                sec = np.cumsum([0, *spec.sel])
                out[spec] = [self._block(coord, box, atype, idx[..., a:b], shift[..., a:b, :], rows)
                             for a, b in zip(sec[:-1], sec[1:])]
            else:
                out[spec] = self._block(coord, box, atype, idx, shift, rows)
        return out

    def _block(self, coord: tf.Tensor, box: tf.Tensor, atype: tf.Tensor, idx: tf.Tensor,
               shift: tf.Tensor, rows: tf.Tensor | None = None) -> Neighbors:
        rij, mask = pair_vectors(coord, box, idx, shift, centres=rows)
        return Neighbors(rij, mask, neighbor_types(atype, idx, self.ntypes))

    def predict(self, task: str, coord: tf.Tensor, box: tf.Tensor, atype: tf.Tensor, nlists: NlistInputs,
                fparam: tf.Tensor | None = None, aparam: tf.Tensor | None = None, *,
                do_force: bool = True) -> dict[str, tf.Tensor]:
        """Predictions of head ``task`` for a batch of frames with the same atom count.

        coord [nf, N, 3], box [nf, 3, 3] (zeros for non-periodic frames), atype [nf, N] int32. A frame with
        fewer atoms (a ``mixed:N`` batch) is padded with atoms of type -1 that no neighbour list names and whose
        own lists are empty: they predict exactly zero and add nothing to energy, force or virial.
        Energy heads: ``atom_energy`` [nf, N], ``energy`` [nf], and with ``do_force`` ``force`` [nf, N, 3] and
        ``virial`` [nf, 9]. Tensor heads: ``atomic`` [nf, N, 3|9] and ``global`` [nf, 3|9].
        """
        head = self.heads[task]
        coord = tf.convert_to_tensor(coord, tf.float64)
        box = tf.convert_to_tensor(box, tf.float64)
        atype, real = real_atoms(tf.convert_to_tensor(atype, tf.int32))
        if head.kind != "ener" or not do_force:
            atomic = self._atomic(head, coord, box, atype, real, nlists, fparam, aparam)
            if head.kind == "ener":
                ae = atomic[..., 0]
                return {"atom_energy": ae, "energy": tf.reduce_sum(ae, axis=1)}
            return {"atomic": atomic, "global": tf.reduce_sum(atomic, axis=1)}
        with tf.GradientTape() as tape:
            nbs = self._neighbors(coord, box, atype, nlists, self.neighbor_specs())
            blocks = [(spec, k, nb) for spec, nbv in nbs.items()
                      for k, nb in enumerate(nbv if isinstance(nbv, list) else [nbv])]
            rijs = [nb.rij for _, _, nb in blocks]
            tape.watch(rijs)
            d = self.descriptor(nbs, atype)
            ae = head.atomic(d.descriptor, d.rot_mat, atype, fparam, aparam)[..., 0] * real
            energy = tf.reduce_sum(ae, axis=1)
        grads = tape.gradient(energy, rijs, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        force, virial = None, None
        nloc = tf.shape(coord)[1]
        for (spec, k, nb), g in zip(blocks, grads):
            idx = nlists[spec][0]
            if isinstance(nbs[spec], list):
                sec = np.cumsum([0, *spec.sel])
                idx = idx[..., sec[k]:sec[k + 1]]
            f, v = forces_and_virial(g, nb.rij, idx, nloc)
            force = f if force is None else force + f
            virial = v if virial is None else virial + v
        return {"atom_energy": ae, "energy": energy, "force": force, "virial": virial}

    def _atomic(self, head: Head, coord: tf.Tensor, box: tf.Tensor, atype: tf.Tensor, real: tf.Tensor,
                nlists: NlistInputs, fparam: tf.Tensor | None, aparam: tf.Tensor | None) -> tf.Tensor:
        """Per-atom output [nf, N, odim] without forces. Where the head has types whose output is exactly zero
        (a dipole on its ``sel_type`` only), descriptor and fitting run on the other atoms' rows alone and the
        result is scattered back: the same numbers for a third of the work on water's oxygens."""
        zero = head.zero_types()
        rows = output_rows(atype, real, [t not in zero for t in range(self.ntypes)]) if zero else None

        def take(x: tf.Tensor | None) -> tf.Tensor | None:  # per-atom tensor -> its computed rows
            return x if rows is None or x is None else tf.gather(x, rows, batch_dims=1)

        nbs = self._neighbors(coord, box, atype, nlists, self.neighbor_specs(), rows=rows)
        atype_rows = take(atype)
        d = self.descriptor(nbs, atype_rows)
        out = head.atomic(d.descriptor, d.rot_mat, atype_rows, fparam, take(aparam)) * take(real)[..., None]
        if rows is None:
            return out
        shape = tf.shape(rows)
        frame = tf.broadcast_to(tf.range(shape[0])[:, None], shape)
        return tf.scatter_nd(tf.stack([frame, rows], axis=-1), out,
                             tf.stack([shape[0], tf.shape(atype)[1], tf.shape(out)[-1]]))


def output_rows(atype: tf.Tensor, real: tf.Tensor, computed: Sequence[bool]) -> tf.Tensor:
    """[nf, M] atom indices, distinct per frame, covering every real atom of a ``computed`` type, and atom 0 first.

    M is the largest such count over the frames (at least 1); a frame with fewer fills its row with other atoms,
    whose output is zeroed by type or by ``real`` anyway. Atom 0 leads because se_atten gives padding neighbour
    slots the type of the frame's first atom (``atype[:, 0]``), as the reference does.
    """
    keep = tf.logical_and(tf.gather(tf.constant(list(computed)), atype), real > 0)
    keep = tf.concat([tf.ones_like(keep[:, :1]), keep[:, 1:]], axis=1)
    count = tf.reduce_max(tf.reduce_sum(tf.cast(keep, tf.int32), axis=1))
    order = tf.argsort(tf.cast(tf.logical_not(keep), tf.int32), axis=1, stable=True)
    return order[:, :count]


def real_atoms(atype: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Padding atoms (type -1) -> a gatherable type 0 and the float mask [nf, N] of real atoms.

    Padding rows then compute like an atom of type 0 without neighbours (finite, coordinate-free) and the mask
    zeroes their output; where every atom is real both are the identity.
    """
    real = atype >= 0
    return tf.where(real, atype, tf.zeros_like(atype)), tf.cast(real, tf.float64)


def forces_and_virial(g: tf.Tensor, rij: tf.Tensor, idx: tf.Tensor, nloc: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """From ``g = dE/dr_ij`` [nf, N, nnei, 3]: forces [nf, N, 3] and virial [nf, 9].

    ``r_ij = x_j - x_i`` so ``dE/dx_i = -sum_k g_ik + sum_{(a,k): j(a,k) = i} g_ak``.
    """
    nf = tf.shape(g)[0]
    as_centre = tf.reduce_sum(g, axis=2)  # [nf, N, 3]
    frame = tf.range(nf)[:, None, None]
    seg = tf.where(idx >= 0, idx + frame * nloc, nf * nloc)  # padding goes to a dropped segment
    as_neigh = tf.math.unsorted_segment_sum(tf.reshape(g, [-1, 3]), tf.reshape(seg, [-1]), nf * nloc + 1)
    as_neigh = tf.reshape(as_neigh[:-1], [nf, nloc, 3])
    force = as_centre - as_neigh
    virial = -tf.einsum("fika,fikb->fab", g, rij)
    return force, tf.reshape(virial, [nf, 9])
