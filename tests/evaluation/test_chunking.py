"""Frames per model call: bounded by neighbour slots (atoms x sel), which is what evaluation memory scales with."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mtbench.data.neighbor import NeighborSpec
from mtbench.data.system import load_systems
from mtbench.evaluation import metrics


class _CountingPredictor:
    """Stands in for HeadPredictor: records how many frames each call gets, returns zero energies."""

    def __init__(self, sel: int) -> None:
        self.nspecs = [NeighborSpec(rcut=4.0, sel=(sel,), mixed_types=True)]
        self.calls: list[int] = []

    def __call__(self, coord, box, atype, nlists, fparam=None, aparam=None):
        self.calls.append(len(coord))
        return {"energy": np.zeros(len(coord))}


def test_frames_per_call_follow_the_neighbour_slots(tiny_data: Path) -> None:
    system = load_systems(sorted((tiny_data / "water_tip3p" / "train").iterdir())[0], ["O", "H"], [])[0]
    frames = np.tile(np.arange(system.nframes), 10)  # frames may repeat: enough of them to need several calls
    slots_per_frame = system.natoms * 120
    wide = _CountingPredictor(sel=120)
    metrics._predict_system(wide, system, frames, chunk_atoms=10**9)
    assert max(wide.calls) == max(1, metrics.DEFAULT_CHUNK_SLOTS // slots_per_frame)
    assert len(wide.calls) > 1 and sum(wide.calls) == len(frames)  # every frame once
    narrow = _CountingPredictor(sel=1)
    metrics._predict_system(narrow, system, frames, chunk_atoms=2 * system.natoms)
    assert max(narrow.calls) == 2  # the atom bound still applies when it is the smaller one
