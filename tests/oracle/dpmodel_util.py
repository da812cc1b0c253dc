"""Helpers to run DeePMD-kit's NumPy reference (the oracle) next to mtbench on the same frames."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

dp = pytest.importorskip("deepmd.dpmodel", reason="deepmd-kit (the oracle) is a test extra")

from deepmd.dpmodel.model.model import get_model  # noqa: E402
from deepmd.dpmodel.utils.nlist import extend_input_and_build_neighbor_list  # noqa: E402

from mtbench.model.multitask import MultiTaskModel  # noqa: E402
from tests.model_cases import randomize_descriptor_stats  # noqa: E402

ATOMIC_KEYS = ("atom_exclude_types", "pair_exclude_types", "rcond", "preset_out_bias", "@variables")


def dpmodel_nlist(coord: np.ndarray, atype: np.ndarray, box: np.ndarray | None, rcut: float, sel: list[int],
                  mixed: bool) -> tuple[np.ndarray, np.ndarray]:
    """DeePMD's own neighbour list, as mtbench's (local index, integer image shift) pairs."""
    nf, n = atype.shape
    ext, _, mapping, nl = extend_input_and_build_neighbor_list(
        coord.reshape(nf, -1), atype, rcut, sel, mixed_types=mixed, box=None if box is None else box.reshape(nf, 9))
    ext = ext.reshape(nf, -1, 3)
    safe = np.maximum(nl, 0)
    idx = np.where(nl >= 0, np.take_along_axis(mapping, safe.reshape(nf, -1), 1).reshape(nl.shape), -1)
    shift = np.zeros(nl.shape + (3,))
    if box is not None:
        inv = np.linalg.inv(box)
        for f in range(nf):
            wrap = np.rint((ext[f, :n] - coord[f]) @ inv[f])
            img = np.rint((ext[f][safe[f]] - coord[f][mapping[f][safe[f]]]) @ inv[f])
            shift[f] = img - wrap[:, None, :]
            shift[f][nl[f] < 0] = 0
    return idx.astype(np.int32), shift.astype(np.int8)


def randomize_stats(data: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Nonzero davg/dstd/out_bias so that normalisation and biases are exercised.

    Like real statistics (and unlike arbitrary arrays) they keep the model rotation invariant: per centre type and
    slot, a radial mean, a zero angular mean and one std shared by the three angular columns.
    """
    randomize_descriptor_stats(data["descriptor"], rng)
    data["@variables"]["out_bias"] = rng.normal(0, 1, data["@variables"]["out_bias"].shape)
    return data


def build_oracle(model_cfg: dict[str, Any], rng: np.random.Generator):
    """(DeePMD reference model, the same model loaded into mtbench as head 't')."""
    ref = get_model(model_cfg)
    data = randomize_stats(ref.serialize(), rng)
    ref = type(ref).deserialize(data)
    mt = MultiTaskModel.from_dict({"type_map": data["type_map"], "descriptor": data["descriptor"],
                                   "heads": {"t": {"fitting": data["fitting"],
                                                   **{k: data[k] for k in ATOMIC_KEYS}}}})
    return ref, mt


def mtbench_nlists(mt: MultiTaskModel, coord: np.ndarray, atype: np.ndarray, box: np.ndarray | None) -> dict:
    return {spec: dpmodel_nlist(coord, atype, box, spec.rcut, list(spec.sel), spec.mixed_types)
            for spec in mt.neighbor_specs()}
