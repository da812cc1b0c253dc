"""DeePMD's ``EnerStdLoss``: energy/force/virial (and atomic energy, prefactor-weighted force) terms.

Prefactors move linearly from ``start_pref_*`` to ``limit_pref_*`` with lr(t)/start_lr; energy and virial terms
are divided by the atom count N (not N^2); ``rmse_e`` and ``rmse_v`` are reported per atom.

Padded batches (``mixed:N``): the energy and virial terms are means over frames of each frame's squared error
divided by its own real atom count (``rmse_e``/``rmse_v`` per frame's atoms), the per-atom terms (force, prefactor
force, atomic energy) means over the batch's real atoms (:func:`~mtbench.loss.base.pooled_atom_mean`). On a batch
of one atom count both are the plain formulas above.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from mtbench.data.requirements import ATOM_ENER, ATOM_PREF, ENERGY, FORCE, VIRIAL, LabelRequirement
from mtbench.loss.base import Loss, pooled_atom_mean, real_atom_mask, register_loss
from mtbench.spec.registry import LOSS_ENER
from mtbench.tracking.names import ENERGY_METRICS

TERMS = ("e", "f", "v", "ae", "pf")
LABEL_OF = {"e": ENERGY, "f": FORCE, "v": VIRIAL, "ae": ATOM_ENER, "pf": ATOM_PREF}


def _prefs(config: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """(start, limit) prefactor per term; defaults from the spec registry (DeePMD-kit's)."""
    out = {}
    for t in TERMS:
        start, limit = f"start_pref_{t}", f"limit_pref_{t}"
        out[t] = (float(config.get(start, LOSS_ENER[start].default)),
                  float(config.get(limit, LOSS_ENER[limit].default)))
    return out


def _metric_names(has: Mapping[str, bool]) -> tuple[str, ...]:
    """``rmse`` and ``rmse_<term>`` of the terms with a nonzero prefactor, in lcurve column order."""
    return tuple(m for m in ENERGY_METRICS if m == "rmse" or has[m.removeprefix("rmse_")])


@register_loss("ener")
class EnerLoss(Loss):
    def __init__(self, prefs: Mapping[str, tuple[float, float]], relative_f: float | None = None) -> None:
        self.prefs = {t: (float(prefs[t][0]), float(prefs[t][1])) for t in TERMS}
        self.has = {t: self.prefs[t][0] != 0.0 or self.prefs[t][1] != 0.0 for t in TERMS}
        self.relative_f = relative_f
        self.metric_names = _metric_names(self.has)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], fitting: Mapping[str, Any], ntypes: int) -> "EnerLoss":
        return cls(_prefs(config), config.get("relative_f"))

    @classmethod
    def reported_metrics(cls, config: Mapping[str, Any]) -> tuple[str, ...]:
        return _metric_names({t: start != 0.0 or limit != 0.0 for t, (start, limit) in _prefs(config).items()})

    def requirements(self) -> list[LabelRequirement]:
        req = []
        if self.has["e"]:
            req.append(ENERGY)
        if self.has["f"] or self.has["pf"]:
            req.append(FORCE)
        if self.has["v"]:
            req.append(VIRIAL)
        if self.has["ae"]:
            req.append(ATOM_ENER)
        if self.has["pf"]:
            req.append(ATOM_PREF)
        return req

    def _pref(self, term: str, lr_ratio: tf.Tensor) -> tf.Tensor:
        start, limit = self.prefs[term]
        p = tf.constant(limit, tf.float32) + (tf.constant(start, tf.float32) - tf.constant(limit, tf.float32)) \
            * tf.cast(lr_ratio, tf.float32)
        return tf.cast(p, tf.float64)

    def __call__(self, pred: Mapping[str, tf.Tensor], batch: Mapping[str, tf.Tensor],
                 lr_ratio: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        if self.padded:
            return self._padded(pred, batch, lr_ratio)
        natoms = tf.cast(tf.shape(pred["atom_energy"])[1], tf.float64)
        loss = tf.constant(0.0, tf.float64)
        metrics: dict[str, tf.Tensor] = {}
        nan = tf.constant(float("nan"), tf.float64)

        def add(term: str, l2: tf.Tensor, norm: tf.Tensor | float, rmse_scale: tf.Tensor | float) -> None:
            nonlocal loss
            find = tf.cast(batch[f"find_{LABEL_OF[term].key}"], tf.float64)
            loss = loss + self._pref(term, lr_ratio) * find * l2 * norm
            metrics[f"rmse_{term}"] = tf.where(find > 0, tf.sqrt(l2) * rmse_scale, nan)

        if self.has["e"]:
            de = pred["energy"] - tf.reshape(batch["energy"], [-1])
            add("e", tf.reduce_mean(de * de), 1.0 / natoms, 1.0 / natoms)
        if self.has["f"] or self.has["pf"]:
            df = self._force_error(pred, batch)
            if self.has["f"]:
                add("f", tf.reduce_mean(df * df), 1.0, 1.0)
            if self.has["pf"]:
                w = batch["atom_pref"]  # [nf, N, 1], broadcast over xyz
                add("pf", tf.reduce_mean(w * df * df), 1.0, 1.0)
        if self.has["v"]:
            dv = pred["virial"] - batch["virial"]
            add("v", tf.reduce_mean(dv * dv), 1.0 / natoms, 1.0 / natoms)
        if self.has["ae"]:
            da = pred["atom_energy"] - batch["atom_ener"][..., 0]
            add("ae", tf.reduce_mean(da * da), 1.0, 1.0)
        metrics = {"rmse": tf.sqrt(loss), **metrics}
        return loss, metrics

    def _force_error(self, pred: Mapping[str, tf.Tensor], batch: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """Predicted minus labelled forces, divided by ``|F| + relative_f`` when the loss is relative."""
        df = pred["force"] - batch["force"]
        if self.relative_f is not None:
            df = df / (tf.norm(batch["force"], axis=-1, keepdims=True) + self.relative_f)
        return df

    def _padded(self, pred: Mapping[str, tf.Tensor], batch: Mapping[str, tf.Tensor],
                lr_ratio: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """The loss of a batch that may hold padding atoms: normalised by real atoms (see the module docstring)."""
        mask, natoms = real_atom_mask(batch)
        loss = tf.constant(0.0, tf.float64)
        metrics: dict[str, tf.Tensor] = {}
        nan = tf.constant(float("nan"), tf.float64)

        def add(term: str, l2: tf.Tensor, rmse2: tf.Tensor) -> None:
            """``l2``: the normalised loss term; ``rmse2``: the square of the reported RMSE."""
            nonlocal loss
            find = tf.cast(batch[f"find_{LABEL_OF[term].key}"], tf.float64)
            loss = loss + self._pref(term, lr_ratio) * find * l2
            metrics[f"rmse_{term}"] = tf.where(find > 0, tf.sqrt(rmse2), nan)

        if self.has["e"]:
            de2 = tf.square(pred["energy"] - tf.reshape(batch["energy"], [-1]))
            add("e", tf.reduce_mean(de2 / natoms), tf.reduce_mean(de2 / (natoms * natoms)))
        if self.has["f"] or self.has["pf"]:
            df = self._force_error(pred, batch)
            if self.has["f"]:
                l2 = pooled_atom_mean(df * df, mask)
                add("f", l2, l2)
            if self.has["pf"]:
                l2 = pooled_atom_mean(batch["atom_pref"] * df * df, mask)
                add("pf", l2, l2)
        if self.has["v"]:
            dv2 = tf.reduce_mean(tf.square(pred["virial"] - batch["virial"]), axis=-1)  # [nf]
            add("v", tf.reduce_mean(dv2 / natoms), tf.reduce_mean(dv2 / (natoms * natoms)))
        if self.has["ae"]:
            da = pred["atom_energy"] - batch["atom_ener"][..., 0]
            l2 = pooled_atom_mean((da * da)[..., None], mask)
            add("ae", l2, l2)
        return loss, {"rmse": tf.sqrt(loss), **metrics}
