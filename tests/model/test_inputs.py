"""One model input signature for training and inference; only the shift dtype differs, and never wraps."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from mtbench.data.neighbor import NeighborSpec
from mtbench.data.requirements import ENERGY, FORCE
from mtbench.errors import DataError
from mtbench.model.inputs import INFERENCE_SHIFT_DTYPE, TRAIN_SHIFT_DTYPE, model_input_signature, shift_tensor
from mtbench.train.step import batch_signature, to_inputs

NSPECS = [NeighborSpec(3.0, (4, 8), False), NeighborSpec(2.0, (6,), True)]


def test_training_and_inference_share_the_model_inputs() -> None:
    from mtbench.inference.predictor import HeadPredictor  # noqa: F401  (imports the same builder)

    train = batch_signature([ENERGY, FORCE], NSPECS, numb_fparam=2, numb_aparam=1)
    infer = model_input_signature(NSPECS, 2, 1)
    assert set(infer) <= set(train)
    assert set(train) - set(infer) == {"energy", "find_energy", "force", "find_force"}
    for key, spec in infer.items():
        want = TRAIN_SHIFT_DTYPE if key.startswith("shift_") else spec.dtype
        assert train[key].dtype == want and train[key].shape.as_list() == spec.shape.as_list(), key
    assert infer["shift_1"].dtype == INFERENCE_SHIFT_DTYPE
    assert infer["idx_0"].shape.as_list() == [None, None, 12] and infer["shift_1"].shape.as_list() == [None, None,
                                                                                                      6, 3]


def test_predictor_compiles_the_inference_signature() -> None:
    from mtbench.inference.predictor import HeadPredictor
    from mtbench.model.multitask import MultiTaskModel

    desc = {"type": "se_e2_a", "sel": [4, 8], "rcut": 3.0, "rcut_smth": 0.5, "neuron": [2, 4], "axis_neuron": 2}
    model = MultiTaskModel.from_config(["O", "H"], desc, {"t": {"type": "ener", "neuron": [4], "numb_fparam": 2}},
                                       seed=1)
    pred = HeadPredictor(model, "t")
    (sig,) = pred._fn.input_signature
    assert sig == model_input_signature(model.neighbor_specs(), 2, 0)
    assert sig["shift_0"].dtype == INFERENCE_SHIFT_DTYPE and "fparam" in sig


def test_shifts_that_do_not_fit_are_refused_not_wrapped() -> None:
    assert shift_tensor(np.array([[-128, 127, 0]], np.int16), tf.int8).numpy().tolist() == [[-128, 127, 0]]
    with pytest.raises(DataError, match="do not fit int8"):
        shift_tensor(np.array([[200, 0, 0]], np.int16), tf.int8)
    assert shift_tensor(np.array([[200, 0, 0]], np.int16), tf.int32).numpy().tolist() == [[200, 0, 0]]


def test_training_batch_with_far_images_is_an_error() -> None:
    spec = NSPECS[1]
    sig = batch_signature([], [spec])
    batch = {"coord": np.zeros((1, 2, 3)), "box": np.eye(3)[None], "atype": np.zeros((1, 2), np.int64),
             "nlist": {spec: (np.zeros((1, 2, 6), np.int32), np.full((1, 2, 6, 3), 300, np.int16))}}
    with pytest.raises(DataError):
        to_inputs(batch, sig, [spec])
    batch["nlist"] = {spec: (np.zeros((1, 2, 6), np.int32), np.full((1, 2, 6, 3), -3, np.int16))}
    out = to_inputs(batch, sig, [spec])
    assert out["shift_0"].dtype == tf.int8 and int(out["shift_0"].numpy().min()) == -3
