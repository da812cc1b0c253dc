"""A task's training (or validation) data: its systems and DeePMD-kit's batching rules.

* batch size per system: an int, a list, ``"auto"`` (= ``"auto:32"``), ``"auto:N"``
  (smallest size with ``size * natoms >= N``), ``"max:N"`` (largest with
  ``size * natoms <= N``, at least 1) or ``"mixed:N"`` (below);
* ``"mixed:N"`` (DeePMD-kit's mixed systems): each of the N frames of a batch draws its
  own system with the system probabilities and takes that system's next frame (batch
  size 1 for its cursor); frames are padded to the largest atom count with atoms of type
  -1 (zero coordinates, empty neighbour lists, zero atomic labels) and ``real_natoms``
  gives each frame's own count. Every system counts ``N`` as its batch size for the
  batch counts and probabilities, as in DeePMD-kit. Asking for ``sys_idx`` (data
  statistics) gives N frames of that one system, unpadded;
* batches per system: ``sum over sets of max(1, nframes_set // batch_size)``;
* system probabilities: ``sys_probs`` (negative entries share the remaining mass in
  proportion to their batches), else ``auto_prob`` = ``prob_sys_size`` (by batches),
  ``prob_uniform``, or ``prob_sys_size;a:b:w;...`` (block ``[a, b)`` gets weight ``w``);
* inside a system the sets are cycled in order; a set's frames (repeated by
  ``numb_copy``) are shuffled and served in consecutive slices; a tail shorter than a
  batch is skipped. A batch larger than the set is the whole shuffled set.

The random generator belongs to the caller; :meth:`TaskDataset.get_state` and
:meth:`TaskDataset.set_state` save and restore the cursors, so a restarted training
draws the same batches.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from mtbench.data.neighbor import NeighborSpec
from mtbench.data.requirements import LabelRequirement
from mtbench.data.system import DeepmdSystem, expand_systems, load_systems
from mtbench.errors import SpecError

_STATE_VERSION = 1
MIXED_PREFIX = "mixed:"
PADDING_TYPE = -1


def is_mixed_batch(batch_size: object) -> bool:
    """Whether a ``batch_size`` setting asks for mixed batches (frames of several systems, padded)."""
    return isinstance(batch_size, str) and batch_size.startswith(MIXED_PREFIX)


class NeighborReport(NamedTuple):
    """Neighbour statistics of one system for one neighbour spec.

    ``max_counts`` has one entry per type, or the total when the spec mixes types.
    """

    path: str
    max_counts: tuple[int, ...]
    sel: tuple[int, ...]
    overflow: bool
    suggestion: tuple[int, ...]


class _Cursor:
    """Where one system stands in its sets: DeePMD-kit's set counter and iterator."""

    def __init__(self) -> None:
        self.set_count = 0
        self.iterator = 0
        self.order: np.ndarray | None = None

    def next_frames(self, system: DeepmdSystem, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        size = 0 if self.order is None else self.order.size
        if self.iterator + batch_size > size:
            if system.nsets == 1 and self.order is not None:
                self.order = self.order[rng.permutation(self.order.size)]
            else:
                frames = system.set_frames(self.set_count % system.nsets)
                frames = np.repeat(frames, system.numb_copy[frames])
                self.order = frames[rng.permutation(frames.size)]
            self.set_count += 1
            self.iterator = 0
        assert self.order is not None
        picked = self.order[self.iterator : self.iterator + batch_size]
        self.iterator += batch_size
        return picked

    def state(self) -> dict[str, Any]:
        return {
            "set_count": self.set_count,
            "iterator": self.iterator,
            "order": None if self.order is None else self.order.tolist(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.set_count = int(state["set_count"])
        self.iterator = int(state["iterator"])
        order = state["order"]
        self.order = None if order is None else np.asarray(order, dtype=np.int64)


class TaskDataset:
    """The data systems of one task (or its validation data) and how batches are drawn.

    ``key`` is the spec path of this data section (e.g.
    ``training.data_dict.water.training_data``); errors name ``<key>.systems``,
    ``<key>.batch_size`` and so on (a key given as ``<section>.systems`` is taken as
    ``<section>``).
    """

    def __init__(
        self,
        systems: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        type_map: Sequence[str],
        requirements: Sequence[LabelRequirement],
        batch_size: int | str | Sequence[int] = "auto",
        sys_probs: Sequence[float] | None = None,
        auto_prob: str = "prob_sys_size",
        key: str = "training_data",
        fmt: str | None = None,
        drop_bad_frames: bool = False,
        replicas: int = 1,
    ) -> None:
        self.key = key.removesuffix(".systems")
        self.type_map = list(type_map)
        self.requirements = list(requirements)
        self.paths = expand_systems(systems, key=f"{key}.systems")
        self.systems: list[DeepmdSystem] = []
        for path in self.paths:
            self.systems.extend(load_systems(path, self.type_map, self.requirements, fmt=fmt,
                                             drop_bad_frames=drop_bad_frames))
        self.mixed = is_mixed_batch(batch_size)
        # data-parallel training: a batch holds ``batch_size`` frames per replica (split by get_batches)
        self.batch_sizes = [b * replicas for b in self._batch_sizes(batch_size)]
        self.nbatches = [
            sum(max(1, n // bs) for n in system.set_nframes)
            for system, bs in zip(self.systems, self.batch_sizes, strict=True)
        ]
        self.probs = self._probs(sys_probs, auto_prob)
        self._cursors = [_Cursor() for _ in self.systems]

    # ------------------------------------------------------------------ rules
    @property
    def nsystems(self) -> int:
        return len(self.systems)

    @property
    def natoms(self) -> list[int]:
        return [s.natoms for s in self.systems]

    @property
    def nframes(self) -> list[int]:
        return [s.nframes for s in self.systems]

    @property
    def natoms_total(self) -> int:
        """Atoms over all frames of all systems."""
        return int(sum(s.natoms * s.nframes for s in self.systems))

    @property
    def dropped_frames(self) -> int:
        """Frames dropped at load time (``drop_bad_frames``), over all systems."""
        return int(sum(s.dropped_frames for s in self.systems))

    @property
    def total_nbatches(self) -> int:
        return int(sum(self.nbatches))

    def has_label(self, key: str) -> bool:
        """Whether every set of every system provides the label."""
        return all(s.has_label(key) for s in self.systems)

    def _batch_sizes(self, batch_size: int | str | Sequence[int]) -> list[int]:
        where = f"{self.key}.batch_size"
        natoms = self.natoms
        if isinstance(batch_size, bool):
            raise SpecError(where, f"expected an int, a list or 'auto[:N]', got {batch_size!r}")
        if isinstance(batch_size, (int, np.integer)):
            if batch_size < 1:
                raise SpecError(where, f"must be >= 1, got {batch_size}")
            return [int(batch_size)] * self.nsystems
        if isinstance(batch_size, str):
            words = batch_size.split(":")
            rule_name = words[0]
            if rule_name not in ("auto", "max", "mixed") or len(words) > 2:
                raise SpecError(where, f"expected an int, a list, 'auto', 'auto:N', 'max:N' or 'mixed:N', "
                                f"got {batch_size!r}")
            if len(words) == 1:
                if rule_name == "max":
                    raise SpecError(where, "'max' needs a number of atoms, e.g. 'max:256'")
                if rule_name == "mixed":
                    raise SpecError(where, "'mixed' needs a number of frames per batch, e.g. 'mixed:4'")
                rule = 32
            else:
                try:
                    rule = int(words[1])
                except ValueError:
                    raise SpecError(where, f"the number after ':' must be an int, got {batch_size!r}") from None
                if rule < 1:
                    raise SpecError(where, f"the number after ':' must be >= 1, got {batch_size!r}")
            if rule_name == "mixed":
                return [rule] * self.nsystems
            if rule_name == "auto":
                return [rule // n + (1 if (rule // n) * n < rule else 0) for n in natoms]
            return [max(1, rule // n) for n in natoms]
        sizes = list(batch_size)
        if len(sizes) != self.nsystems:
            raise SpecError(where, f"has {len(sizes)} entries for {self.nsystems} systems ({self.paths})")
        if any(isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1 for b in sizes):
            raise SpecError(where, f"entries must be ints >= 1, got {sizes}")
        return [int(b) for b in sizes]

    def _probs(self, sys_probs: Sequence[float] | None, auto_prob: str) -> np.ndarray:
        nbatch = np.asarray(self.nbatches, dtype=np.float64)
        if sys_probs is not None:
            where = f"{self.key}.sys_probs"
            probs = np.asarray(list(sys_probs), dtype=np.float64)
            if probs.shape != (self.nsystems,):
                raise SpecError(where, f"has {probs.size} entries for {self.nsystems} systems")
            assigned = probs >= 0
            mass = float(probs[assigned].sum())
            if mass > 1.0 + 1e-8:
                raise SpecError(where, f"non-negative entries sum to {mass:g} > 1")
            rest = 1.0 - mass
            out = np.where(assigned, probs, 0.0)
            if (~assigned).any():
                out[~assigned] = max(rest, 0.0) * nbatch[~assigned] / nbatch[~assigned].sum()
            elif not np.isclose(rest, 0.0):
                raise SpecError(
                    where, f"entries sum to {mass:g}, not 1 (a negative entry takes its share from the system size)"
                )
            return out / out.sum()
        where = f"{self.key}.auto_prob"
        if auto_prob == "prob_uniform":
            return np.full(self.nsystems, 1.0 / self.nsystems)
        if auto_prob == "prob_sys_size":
            return nbatch / nbatch.sum()
        if not auto_prob.startswith("prob_sys_size;"):
            raise SpecError(
                where, f"expected 'prob_sys_size', 'prob_uniform' or 'prob_sys_size;a:b:w;...', got {auto_prob!r}"
            )
        probs = np.zeros(self.nsystems)
        blocks = []
        for block in auto_prob.split(";")[1:]:
            try:
                start_s, end_s, weight_s = block.split(":")
                start, end, weight = int(start_s), int(end_s), float(weight_s)
            except ValueError:
                raise SpecError(where, f"block {block!r} is not 'start:end:weight'") from None
            if not (0 <= start < end <= self.nsystems) or weight < 0:
                raise SpecError(where, f"block {block!r} needs 0 <= start < end <= {self.nsystems} and weight >= 0")
            blocks.append((start, end, weight))
        total = sum(w for _, _, w in blocks)
        if not blocks or total <= 0:
            raise SpecError(where, f"{auto_prob!r} gives no system a positive weight")
        for start, end, weight in blocks:
            probs[start:end] = weight / total * nbatch[start:end] / nbatch[start:end].sum()
        return probs / probs.sum()

    # ------------------------------------------------------------------ batches
    def get_batch(
        self,
        rng: np.random.Generator,
        sys_idx: int | None = None,
        nspecs: Sequence[NeighborSpec] = (),
    ) -> dict[str, Any]:
        """The next batch: of system ``sys_idx`` or of one drawn with :attr:`probs`.

        Gives the system's frame arrays (see :meth:`DeepmdSystem.frames`), ``sys_idx``,
        ``real_natoms`` [nf] and ``nlist = {spec: (idx, shift)}`` for each spec asked for.
        A mixed dataset without ``sys_idx`` gives a padded batch of several systems
        (:meth:`_mixed_batch`).
        """
        return self.get_batches(rng, 1, sys_idx=sys_idx, nspecs=nspecs)[0]

    def get_batches(
        self,
        rng: np.random.Generator,
        nparts: int,
        sys_idx: int | None = None,
        nspecs: Sequence[NeighborSpec] = (),
    ) -> list[dict[str, Any]]:
        """The next batch split into ``nparts`` contiguous shares of frames (data-parallel replicas: replica ``r``
        trains share ``r``, so together they train the frames of the one batch)."""
        if sys_idx is None and self.mixed:
            if nparts > 1:
                raise SpecError("training.training_data.batch_size",
                                "'mixed:N' batches are not supported with training.distributed yet")
            return [self._mixed_batch(rng, nspecs)]
        if sys_idx is None:
            sys_idx = int(rng.choice(self.nsystems, p=self.probs))
        drawn = self._cursors[sys_idx].next_frames(self.systems[sys_idx], self.batch_sizes[sys_idx], rng)
        return [self._frames_batch(sys_idx, frames, nspecs)
                for frames in (np.array_split(drawn, nparts) if nparts > 1 else [drawn])]

    def _system_batch(self, sys_idx: int, size: int, rng: np.random.Generator,
                      nspecs: Sequence[NeighborSpec]) -> dict[str, Any]:
        """The next ``size`` frames of system ``sys_idx`` from its cursor."""
        frames = self._cursors[sys_idx].next_frames(self.systems[sys_idx], size, rng)
        return self._frames_batch(sys_idx, frames, nspecs)

    def _frames_batch(self, sys_idx: int, frames: np.ndarray, nspecs: Sequence[NeighborSpec]) -> dict[str, Any]:
        system = self.systems[sys_idx]
        batch = system.frames(frames)
        batch["sys_idx"] = sys_idx
        batch["real_natoms"] = np.full(len(frames), system.natoms, dtype=np.int64)
        batch["nlist"] = {spec: system.neighbor_data(spec).take(frames) for spec in nspecs}
        return batch

    def _mixed_batch(self, rng: np.random.Generator, nspecs: Sequence[NeighborSpec]) -> dict[str, Any]:
        """DeePMD-kit's ``get_batch_mixed``: one system draw and one frame per batch slot, merged with padding.

        ``sys_idx`` and ``real_natoms`` are per frame; ``natoms`` is the padded width (DeePMD-kit's
        ``natoms_vec[0]``); a ``find_<key>`` flag is 1 only if every frame has the label.
        """
        nframes = self.batch_sizes[0]
        parts = []
        for _ in range(nframes):
            i = int(rng.choice(self.nsystems, p=self.probs))
            parts.append((i, self._system_batch(i, 1, rng, nspecs)))
        width = max(b["natoms"] for _, b in parts)

        def pad(arrays: list[np.ndarray], fill: float | int) -> np.ndarray:
            """Frames of [1, n_i, ...] -> [nf, width, ...], ``fill`` beyond each frame's atoms."""
            first = arrays[0]
            out = np.full((len(arrays), width, *first.shape[2:]), fill, dtype=first.dtype)
            for k, a in enumerate(arrays):
                out[k, : a.shape[1]] = a[0]
            return out

        batches = [b for _, b in parts]
        merged: dict[str, Any] = {
            "coord": pad([b["coord"] for b in batches], 0.0),
            "box": np.concatenate([b["box"] for b in batches]),
            "atype": pad([b["atype"] for b in batches], PADDING_TYPE),
            "natoms": int(width),
            "real_natoms": np.array([b["natoms"] for b in batches], dtype=np.int64),
            "nopbc": all(b["nopbc"] for b in batches),
            "frame_idx": np.concatenate([b["frame_idx"] for b in batches]),
            "sys_idx": np.array([i for i, _ in parts], dtype=np.int64),
        }
        for req in self.requirements:
            values = [b[req.key] for b in batches]
            merged[req.key] = pad(values, 0.0) if req.atomic else np.concatenate(values)
            merged[f"find_{req.key}"] = float(min(b[f"find_{req.key}"] for b in batches))
        merged["nlist"] = {
            spec: (pad([b["nlist"][spec][0] for b in batches], -1), pad([b["nlist"][spec][1] for b in batches], 0))
            for spec in nspecs
        }
        return merged

    def get_state(self) -> dict[str, Any]:
        """The batch cursors, JSON-serialisable (the caller saves its RNG state beside it)."""
        return {
            "version": _STATE_VERSION,
            "systems": [
                {"path": system.path, "nframes": system.nframes, **cursor.state()}
                for system, cursor in zip(self.systems, self._cursors, strict=True)
            ],
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`get_state` of a dataset over the same systems."""
        entries = state.get("systems", [])
        if state.get("version") != _STATE_VERSION or len(entries) != self.nsystems:
            raise SpecError(
                f"{self.key}.systems", f"the saved data state has {len(entries)} systems, the data has {self.nsystems}"
            )
        for system, entry in zip(self.systems, entries, strict=True):
            if entry["nframes"] != system.nframes:
                raise SpecError(
                    f"{self.key}.systems",
                    f"the saved data state of {entry['path']} has {entry['nframes']} frames, {system.path} has {system.nframes}",
                )
        for cursor, entry in zip(self._cursors, entries, strict=True):
            cursor.restore(entry)

    def neighbor_report(self, spec: NeighborSpec) -> list[NeighborReport]:
        """Per system: most neighbours seen, the sel in use, overflow, and DeePMD's 'auto' sel."""
        out = []
        for system in self.systems:
            data = system.neighbor_data(spec)
            counts = (data.max_total,) if data.spec.mixed_types else tuple(int(c) for c in data.max_counts)
            out.append(NeighborReport(system.path, counts, data.spec.sel, data.overflow, data.sel_suggestion))
        return out

    def __repr__(self) -> str:
        return f"TaskDataset({self.key!r}, nsystems={self.nsystems}, batch_sizes={self.batch_sizes})"
