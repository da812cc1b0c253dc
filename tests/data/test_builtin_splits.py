"""The built-in data's train and validation splits come from the same distribution (v1's TIP4P split did not).

Per frame one scalar per label (energy per atom, RMS of force/virial/tensor components); the split means must agree
within 3 standard errors of their difference. On the real built-in data (default settings, generated once per
session into the test cache).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mtbench.data.synthetic import BUILTIN_DATASETS, builtin_data_root

LABELS = ("energy", "force", "virial", "dipole", "atomic_dipole", "polarizability", "atomic_polarizability")


def _per_frame(system: Path, label: str) -> np.ndarray | None:
    f = system / "set.000" / f"{label}.npy"
    if not f.is_file():
        return None
    a = np.load(f)
    if label == "energy":
        return a / len((system / "type.raw").read_text().split())
    return np.sqrt(np.mean(a.reshape(len(a), -1) ** 2, axis=1))


@pytest.fixture(scope="module")
def root() -> Path:
    return builtin_data_root(progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", sorted({d.split("/")[0] for d in BUILTIN_DATASETS}))
def test_train_and_validation_agree_in_distribution(root: Path, dataset: str) -> None:
    checked = 0
    for system in sorted(p.name for p in (root / dataset / "train").iterdir()):
        for label in LABELS:
            trn = _per_frame(root / dataset / "train" / system, label)
            val = _per_frame(root / dataset / "val" / system, label)
            if trn is None:
                continue
            assert val is not None, f"{dataset}/val/{system} lacks {label}"
            se = math.sqrt(trn.var(ddof=1) / len(trn) + val.var(ddof=1) / len(val))
            diff = abs(trn.mean() - val.mean())
            assert diff <= 3 * se, (f"{dataset}/{system}/{label}: train mean {trn.mean():.6g}, val mean "
                                    f"{val.mean():.6g}: {diff / se:.1f} standard errors apart")
            checked += 1
    assert checked >= 1
