"""The model's input tensors: the one definition of their names, dtypes and shapes.

Training steps (:mod:`mtbench.train.step`) and the inference predictor (:mod:`mtbench.inference.predictor`) compile
``MultiTaskModel.predict`` behind a ``tf.function`` with this signature: ``coord`` [nf, N, 3] and ``box``
[nf, 3, 3] float64, ``atype`` [nf, N] int32, per neighbour spec ``k`` ``idx_k`` [nf, N, nnei] int32 and
``shift_k`` [nf, N, nnei, 3] integer image vectors, ``fparam`` [nf, numb_fparam] and ``aparam``
[nf, N, numb_aparam] float64 when the head takes them. Frames and atoms are ``None``: one trace serves every system.

Only the dtype of the image shifts differs between callers, a parameter here: training feeds int8 (what the data
layer caches: a quarter of the bytes per step), inference int32 (MD trajectories can drift far from the cell).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from mtbench.data.neighbor import NeighborSpec
from mtbench.errors import DataError

TRAIN_SHIFT_DTYPE = tf.int8
INFERENCE_SHIFT_DTYPE = tf.int32


def idx_key(k: int) -> str:
    return f"idx_{k}"


def shift_key(k: int) -> str:
    return f"shift_{k}"


def model_input_signature(nspecs: Sequence[NeighborSpec], numb_fparam: int = 0, numb_aparam: int = 0, *,
                          shift_dtype: tf.DType = INFERENCE_SHIFT_DTYPE) -> dict[str, tf.TensorSpec]:
    """The ``tf.TensorSpec`` of every model input (see the module docstring)."""
    sig: dict[str, tf.TensorSpec] = {
        "coord": tf.TensorSpec([None, None, 3], tf.float64),
        "box": tf.TensorSpec([None, 3, 3], tf.float64),
        "atype": tf.TensorSpec([None, None], tf.int32),
    }
    for k, spec in enumerate(nspecs):
        sig[idx_key(k)] = tf.TensorSpec([None, None, spec.nnei], tf.int32)
        sig[shift_key(k)] = tf.TensorSpec([None, None, spec.nnei, 3], shift_dtype)
    if numb_fparam:
        sig["fparam"] = tf.TensorSpec([None, int(numb_fparam)], tf.float64)
    if numb_aparam:
        sig["aparam"] = tf.TensorSpec([None, None, int(numb_aparam)], tf.float64)
    return sig


def shift_tensor(shift: Any, dtype: tf.DType) -> tf.Tensor:
    """Image shifts as ``dtype``; refuses to narrow values that do not fit (a cast would wrap them silently)."""
    arr = np.asarray(shift)
    target = np.dtype(dtype.as_numpy_dtype)
    if arr.dtype.itemsize > target.itemsize and arr.size:
        info = np.iinfo(target)
        if arr.min() < info.min or arr.max() > info.max:
            raise DataError("neighbour list", f"image shifts up to {int(np.abs(arr).max())} cells do not fit "
                            f"{target.name}; wrap the coordinates into the cell")
    return tf.convert_to_tensor(arr.astype(target, copy=False), dtype)


def nlist_tensors(nlists: Mapping[NeighborSpec, tuple[Any, Any]], nspecs: Sequence[NeighborSpec],
                  shift_dtype: tf.DType) -> dict[str, tf.Tensor]:
    """``idx_k`` / ``shift_k`` tensors from ``{spec: (idx, shift)}`` arrays."""
    out: dict[str, tf.Tensor] = {}
    for k, spec in enumerate(nspecs):
        idx, shift = nlists[spec]
        out[idx_key(k)] = tf.convert_to_tensor(idx, tf.int32)
        out[shift_key(k)] = shift_tensor(shift, shift_dtype)
    return out


def predict_inputs(model: Any, head: str, inputs: Mapping[str, tf.Tensor], nspecs: Sequence[NeighborSpec], *,
                   do_force: bool) -> dict[str, tf.Tensor]:
    """``model.predict`` on a dict of this signature's tensors."""
    nlists = {spec: (inputs[idx_key(k)], inputs[shift_key(k)]) for k, spec in enumerate(nspecs)}
    return model.predict(head, inputs["coord"], inputs["box"], inputs["atype"], nlists, inputs.get("fparam"),
                         inputs.get("aparam"), do_force=do_force)
