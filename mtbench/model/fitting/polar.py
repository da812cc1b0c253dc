"""Polarizability fitting: ``alpha_i = scale_t * Q_i^T A_i Q_i (+ diagonal shift)``, A diagonal or symmetric."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from mtbench.model.fitting.base import Fitting, SharedLayers, register_fitting


@register_fitting("polar")
class PolarFitting(Fitting):
    var_name = "polar"

    def __init__(self, *, embedding_width: int, fit_diag: bool = True, shift_diag: bool = True,
                 scale: np.ndarray | Sequence[float] | float | None = None,
                 constant_matrix: np.ndarray | None = None, **kwargs: Any) -> None:
        self.embedding_width = int(embedding_width)
        self.fit_diag = bool(fit_diag)
        self.shift_diag = bool(shift_diag)
        super().__init__(**kwargs)
        if scale is None:
            scale = np.ones(self.ntypes)
        elif np.isscalar(scale):
            scale = np.full(self.ntypes, float(scale))
        self.scale = tf.Variable(np.asarray(scale, np.float64).reshape(self.ntypes, 1), trainable=False,
                                 name="scale")
        cm = np.zeros(self.ntypes) if constant_matrix is None else np.asarray(constant_matrix, np.float64)
        self.constant_matrix = tf.Variable(cm.reshape(self.ntypes), trainable=False, name="constant_matrix")

    @property
    def net_out_dim(self) -> int:
        return self.embedding_width if self.fit_diag else self.embedding_width ** 2

    def _extra_dict(self) -> dict[str, Any]:
        return {"@version": 5, "embedding_width": self.embedding_width, "fit_diag": self.fit_diag,
                "shift_diag": self.shift_diag}

    def _extra_variables(self) -> dict[str, np.ndarray]:
        return {"scale": self.scale.numpy(), "constant_matrix": self.constant_matrix.numpy()}

    @classmethod
    def build(cls, config: dict[str, Any], *, ntypes: int, dim_descrpt: int, dim_emb: int, mixed_types: bool,
              rng: np.random.Generator, shared: SharedLayers | None, type_map: Sequence[str]) -> "PolarFitting":
        fit_diag = bool(config.get("fit_diag", True))
        out_dim = dim_emb if fit_diag else dim_emb * dim_emb
        kw = cls._common_from_config(config, ntypes=ntypes, dim_descrpt=dim_descrpt, out_dim=out_dim,
                                     mixed_types=mixed_types, rng=rng, shared=shared, type_map=type_map)
        scale = config.get("scale", 1.0)
        if isinstance(scale, (list, tuple)):
            # DeePMD v2 gives one scale per sel_type entry; place them by type (other types keep 1.0)
            sel_type = config.get("sel_type") or list(range(ntypes))
            full = np.ones(ntypes)
            if len(scale) == ntypes:
                full = np.asarray(scale, np.float64)
            else:
                for t, s in zip(sel_type, scale):
                    full[t] = s
            scale = full
        return cls(embedding_width=dim_emb, fit_diag=fit_diag, shift_diag=config.get("shift_diag", True),
                   scale=scale, **kw)

    @classmethod
    def from_dict(cls, data: dict[str, Any], shared: SharedLayers | None = None) -> "PolarFitting":
        var = data["@variables"]
        return cls(embedding_width=data["embedding_width"], fit_diag=data.get("fit_diag", True),
                   shift_diag=data.get("shift_diag", True), scale=var.get("scale"),
                   constant_matrix=var.get("constant_matrix"), **cls._common_from_dict(data, shared))

    def __call__(self, descriptor: tf.Tensor, rot_mat: tf.Tensor | None, atype: tf.Tensor,
                 fparam: tf.Tensor | None = None, aparam: tf.Tensor | None = None) -> tf.Tensor:
        if rot_mat is None:
            raise ValueError("polar fitting needs a descriptor with a rotation matrix")
        out = self.net_outputs(descriptor, atype, fparam, aparam)
        dtype = out.dtype
        shape = tf.shape(out)
        nf, nloc = shape[0], shape[1]
        scale = tf.gather(tf.cast(self.scale, dtype), atype)  # [nf, nloc, 1]
        out = out * scale
        m1 = self.embedding_width
        gr = tf.reshape(tf.cast(rot_mat, dtype), [-1, m1, 3])
        if self.fit_diag:
            a = tf.reshape(out, [-1, m1])[:, :, None] * gr
        else:
            b = tf.reshape(out, [-1, m1, m1])
            a = tf.matmul((b + tf.transpose(b, [0, 2, 1])) / 2.0, gr)
        alpha = tf.matmul(gr, a, transpose_a=True)  # [rows, 3, 3]
        alpha = tf.reshape(alpha, [nf, nloc, 3, 3])
        if self.shift_diag:
            bias = tf.gather(tf.cast(self.constant_matrix, dtype), atype)[..., None] * scale  # [nf, nloc, 1]
            alpha = alpha + bias[..., None] * tf.eye(3, dtype=dtype)
        return tf.cast(tf.reshape(alpha, [nf, nloc, 9]), tf.float64)
