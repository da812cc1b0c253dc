"""Dipole fitting: per-atom coefficients contracted with the descriptor's rotation matrix, ``mu_i = a_i^T Q_i``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from mtbench.model.fitting.base import Fitting, SharedLayers, register_fitting


@register_fitting("dipole")
class DipoleFitting(Fitting):
    var_name = "dipole"

    def __init__(self, *, embedding_width: int, **kwargs: Any) -> None:
        self.embedding_width = int(embedding_width)
        super().__init__(**kwargs)

    @property
    def net_out_dim(self) -> int:
        return self.embedding_width

    def _extra_dict(self) -> dict[str, Any]:
        return {"embedding_width": self.embedding_width, "r_differentiable": True, "c_differentiable": True}

    @classmethod
    def build(cls, config: dict[str, Any], *, ntypes: int, dim_descrpt: int, dim_emb: int, mixed_types: bool,
              rng: np.random.Generator, shared: SharedLayers | None, type_map: Sequence[str]) -> "DipoleFitting":
        kw = cls._common_from_config(config, ntypes=ntypes, dim_descrpt=dim_descrpt, out_dim=dim_emb,
                                     mixed_types=mixed_types, rng=rng, shared=shared, type_map=type_map)
        return cls(embedding_width=dim_emb, **kw)

    @classmethod
    def from_dict(cls, data: dict[str, Any], shared: SharedLayers | None = None) -> "DipoleFitting":
        return cls(embedding_width=data["embedding_width"], **cls._common_from_dict(data, shared))

    def __call__(self, descriptor: tf.Tensor, rot_mat: tf.Tensor | None, atype: tf.Tensor,
                 fparam: tf.Tensor | None = None, aparam: tf.Tensor | None = None) -> tf.Tensor:
        if rot_mat is None:
            raise ValueError("dipole fitting needs a descriptor with a rotation matrix")
        out = self.net_outputs(descriptor, atype, fparam, aparam)  # [nf, nloc, M1]
        gr = tf.cast(rot_mat, out.dtype)  # [nf, nloc, M1, 3]
        dip = tf.squeeze(tf.matmul(out[:, :, None, :], gr), axis=2)  # [nf, nloc, 3]
        return tf.cast(dip, tf.float64)
