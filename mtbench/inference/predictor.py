"""One head of a trained model as a NumPy function: the compiled predictor shared by ``mtbench.test``, the ASE
calculator and the final evaluation."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from mtbench.errors import SpecError


def as_model(model: Any, head: str | None = None) -> Any:
    """A :class:`~mtbench.model.multitask.MultiTaskModel` from a model, a ``LoadedModel`` or a path (of a
    per-head frozen folder only ``head`` is loaded when given)."""
    from mtbench.model.multitask import MultiTaskModel

    if isinstance(model, MultiTaskModel):
        return model
    if hasattr(model, "model") and isinstance(model.model, MultiTaskModel):
        return model.model
    if isinstance(model, (str, os.PathLike)):
        from mtbench.export.load import load_model

        return load_model(model, head=head).model
    raise TypeError(f"not a model, LoadedModel or path: {type(model).__name__}")


def head_sel_type(model: Any, head: str) -> list[int]:
    """Atom types a tensor head predicts for (DeePMD's ``get_sel_type``)."""
    h = model.heads[head]
    return [t for t in h.fitting.sel_type if t not in h.atom_exclude_types]


def check_head(model: Any, head: str) -> str:
    if head not in model.heads:
        raise SpecError("head", f"model has no head {head!r}; heads: {', '.join(model.heads)}")
    return head


class HeadPredictor:
    """One head's predictions as NumPy arrays.

    ``__call__(coord [nf,N,3], box [nf,3,3] (zeros: no PBC), atype [nf,N], nlists {spec: (idx, shift)})``.
    ``compiled``: through one shape-polymorphic ``tf.function`` (traced once, 5-10 CPU s for a big model: pays off
    over many calls, as in MD or a test set evaluated a frame per call); otherwise eagerly (a few calls).
    :func:`mtbench.evaluation.metrics.evaluate` chooses by its number of calls.
    """

    def __init__(self, model: Any, head: str, *, do_force: bool = True, compiled: bool = True) -> None:
        import tensorflow as tf

        from mtbench.model.inputs import INFERENCE_SHIFT_DTYPE, model_input_signature

        self.model = as_model(model)
        self.head = check_head(self.model, head)
        self.kind = self.model.heads[head].kind
        self.nspecs = self.model.neighbor_specs()
        fitting = self.model.heads[head].fitting
        self.numb_fparam, self.numb_aparam = int(fitting.numb_fparam), int(fitting.numb_aparam)
        self.do_force = do_force
        sig = model_input_signature(self.nspecs, self.numb_fparam, self.numb_aparam, shift_dtype=INFERENCE_SHIFT_DTYPE)
        self._fn = tf.function(self._run, input_signature=[sig]) if compiled else self._run

    def _run(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        from mtbench.model.inputs import predict_inputs

        return predict_inputs(self.model, self.head, inputs, self.nspecs, do_force=self.do_force)

    def __call__(self, coord: np.ndarray, box: np.ndarray, atype: np.ndarray,
                 nlists: Mapping[Any, tuple[np.ndarray, np.ndarray]], fparam: np.ndarray | None = None,
                 aparam: np.ndarray | None = None) -> dict[str, np.ndarray]:
        import tensorflow as tf

        from mtbench.model.inputs import INFERENCE_SHIFT_DTYPE, nlist_tensors

        inputs: dict[str, Any] = {"coord": tf.constant(coord, tf.float64), "box": tf.constant(box, tf.float64),
                                  "atype": tf.constant(atype, tf.int32),
                                  **nlist_tensors(nlists, self.nspecs, INFERENCE_SHIFT_DTYPE)}
        if self.numb_fparam:
            if fparam is None:
                raise SpecError("fparam", f"head {self.head!r} needs {self.numb_fparam} frame parameters (fparam)")
            inputs["fparam"] = tf.constant(np.reshape(fparam, (len(coord), self.numb_fparam)), tf.float64)
        if self.numb_aparam:
            if aparam is None:
                raise SpecError("aparam", f"head {self.head!r} needs {self.numb_aparam} atomic parameters (aparam)")
            inputs["aparam"] = tf.constant(np.reshape(aparam, (len(coord), -1, self.numb_aparam)), tf.float64)
        return {k: v.numpy() for k, v in self._fn(inputs).items()}
