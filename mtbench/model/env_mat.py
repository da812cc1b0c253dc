"""Pair vectors and DeePMD's smooth environment matrix, in TensorFlow.

Neighbour lists are precomputed once per frame (training frames never move) as local atom indices plus integer
periodic-image shifts, so that ``r_ij = x_j + n_ij @ box - x_i`` stays differentiable in both the coordinates and
the box: forces come from d/dx, virials from the pair-vector gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from mtbench.model.kernels.env import smooth_env


@dataclass
class Neighbors:
    """Per-descriptor neighbour data of a batch: pair vectors, real-neighbour mask and neighbour types."""

    rij: tf.Tensor  # [nf, nloc, nnei, 3] float64; zero for padding
    mask: tf.Tensor  # [nf, nloc, nnei] bool
    nei_type: tf.Tensor  # [nf, nloc, nnei] int32; ntypes for padding


def pair_vectors(coord: tf.Tensor, box: tf.Tensor, idx: tf.Tensor, shift: tf.Tensor,
                 centres: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """``r_ij = x_j + shift_ij @ box - x_i`` for every neighbour slot; padding (idx < 0) gives 0.

    The rows of ``idx`` are atoms 0..nloc-1, or with ``centres`` [nf, M] those atoms."""
    mask = idx >= 0
    safe_idx = tf.where(mask, idx, tf.zeros_like(idx))
    xj = tf.gather(coord, safe_idx, batch_dims=1)  # [nf, nloc, nnei, 3]
    image = tf.einsum("fiks,fsd->fikd", tf.cast(shift, coord.dtype), box)
    xi = coord if centres is None else tf.gather(coord, centres, batch_dims=1)
    rij = xj + image - xi[:, :, None, :]
    return tf.where(mask[..., None], rij, tf.zeros_like(rij)), mask


def neighbor_types(atype: tf.Tensor, idx: tf.Tensor, ntypes: int) -> tf.Tensor:
    """Type of the atom in every neighbour slot, ``ntypes`` for padding."""
    mask = idx >= 0
    t = tf.gather(atype, tf.where(mask, idx, tf.zeros_like(idx)), batch_dims=1)
    return tf.where(mask, t, tf.fill(tf.shape(t), tf.constant(ntypes, t.dtype)))


def env_matrix(nb: Neighbors, rcut: float, rcut_smth: float, *, radial_only: bool = False,
               protection: float = 0.0) -> tuple[tf.Tensor, tf.Tensor]:
    """Raw (unnormalised) environment matrix rows ``sw * (1/r, x/r^2, y/r^2, z/r^2)`` and the switch ``sw``.

    Padding slots are exactly zero and carry no gradient. (:func:`~mtbench.model.kernels.env.smooth_env`: compiled
    where it applies, else TensorFlow's ops.)
    """
    return smooth_env(nb.rij, nb.mask, rcut_smth, rcut, protection, radial_only)


def normalize_env(em: tf.Tensor, atype: tf.Tensor, davg: tf.Tensor, dstd: tf.Tensor) -> tf.Tensor:
    """``(em - davg[t_i]) / dstd[t_i]`` with per-centre-type, per-slot statistics (shape [ntypes, nnei, ncol])."""
    return (em - tf.gather(davg, atype)) / tf.gather(dstd, atype)


def env_stat_sums(em: np.ndarray, atype: np.ndarray, ntypes: int) -> np.ndarray:
    """Per centre type: [n, sum r, sum r^2, sum a, sum a^2] over all slots (padding included), as DeePMD pools them.

    ``em`` is the raw env matrix [nf, nloc, nnei, ncol]; the angular sums are averaged over the three columns.
    """
    out = np.zeros((ntypes, 5))
    ncol = em.shape[-1]
    flat_t = atype.reshape(-1)
    rows = em.reshape(-1, em.shape[-2], ncol)
    for t in range(ntypes):
        sel = rows[flat_t == t]
        if sel.size == 0:
            continue
        r = sel[..., 0]
        out[t, 0] += r.size
        out[t, 1] += r.sum()
        out[t, 2] += (r * r).sum()
        if ncol == 4:
            a = sel[..., 1:]
            out[t, 3] += a.sum() / 3.0
            out[t, 4] += (a * a).sum() / 3.0
    return out


def env_stat_to_davg_dstd(sums: np.ndarray, nnei: int, ncol: int, *, set_davg_zero: bool, rcut: float,
                          floor: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """Pooled sums -> ``davg``/``dstd`` arrays [ntypes, nnei, ncol]: radial mean, zero angular mean, std floors."""
    ntypes = sums.shape[0]
    davg = np.zeros((ntypes, nnei, ncol))
    dstd = np.ones((ntypes, nnei, ncol))
    for t in range(ntypes):
        n = sums[t, 0]
        if n == 0:  # a type absent from the data: DeePMD v3's reference uses std 0.1
            dstd[t] = 0.1
            continue
        mean_r = sums[t, 1] / n
        std_r = np.sqrt(max(sums[t, 2] / n - mean_r * mean_r, 0.0))
        std_r = floor if abs(std_r) < floor else std_r
        if not set_davg_zero:
            davg[t, :, 0] = mean_r
        dstd[t, :, 0] = std_r
        if ncol == 4:
            mean_a = sums[t, 3] / n
            std_a = np.sqrt(max(sums[t, 4] / n - mean_a * mean_a, 0.0))
            std_a = floor if abs(std_a) < floor else std_a
            dstd[t, :, 1:] = std_a
    return davg, dstd
