"""Energy fitting: one scalar per atom; the model sums them and differentiates for forces and virials."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from mtbench.model.fitting.base import Fitting, SharedLayers, register_fitting


@register_fitting("ener")
class EnerFitting(Fitting):
    var_name = "energy"

    def __init__(self, *, atom_ener: Sequence[float | None] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.atom_ener = None if atom_ener is None else list(atom_ener)

    @property
    def net_out_dim(self) -> int:
        return 1

    @property
    def remove_vacuum(self) -> list[bool] | None:
        if not self.atom_ener or all(x is None for x in self.atom_ener):
            return None
        return [x is not None for x in self.atom_ener]

    def _extra_dict(self) -> dict[str, Any]:
        return {"dim_out": 1, "atom_ener": self.atom_ener}

    @classmethod
    def build(cls, config: dict[str, Any], *, ntypes: int, dim_descrpt: int, dim_emb: int, mixed_types: bool,
              rng: np.random.Generator, shared: SharedLayers | None, type_map: Sequence[str]) -> "EnerFitting":
        kw = cls._common_from_config(config, ntypes=ntypes, dim_descrpt=dim_descrpt, out_dim=1,
                                     mixed_types=mixed_types, rng=rng, shared=shared, type_map=type_map)
        atom_ener = config.get("atom_ener") or None
        return cls(atom_ener=atom_ener, **kw)

    @classmethod
    def from_dict(cls, data: dict[str, Any], shared: SharedLayers | None = None) -> "EnerFitting":
        return cls(atom_ener=data.get("atom_ener"), **cls._common_from_dict(data, shared))

    def __call__(self, descriptor: tf.Tensor, rot_mat: tf.Tensor | None, atype: tf.Tensor,
                 fparam: tf.Tensor | None = None, aparam: tf.Tensor | None = None) -> tf.Tensor:
        out = self.net_outputs(descriptor, atype, fparam, aparam, remove_vacuum=self.remove_vacuum)
        return tf.cast(out, tf.float64)  # [nf, nloc, 1]
