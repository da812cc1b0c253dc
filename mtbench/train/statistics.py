"""Data statistics before the first step: descriptor normalisation, output biases, neighbour-count report."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mtbench.data.requirements import TENSOR_LABELS
from mtbench.model.descriptor import NeighborSpec
from mtbench.model.multitask import MultiTaskModel
from mtbench.model.stats import energy_bias, param_stats, polar_diag_shift, type_counts

log = logging.getLogger("mtbench")


def stat_batches(rt: Any, nspecs: Sequence[NeighborSpec], nbatch: int) -> list[list[dict]]:
    """``nbatch`` training batches from every system of a task (DeePMD's ``data_stat_nbatch``), per system."""
    out = []
    for i in range(len(rt.train_data.systems)):
        out.append([rt.train_data.get_batch(rt.train_rng, sys_idx=i, nspecs=nspecs) for _ in range(nbatch)])
    return out


def compute_statistics(model: MultiTaskModel, runtime: Mapping[str, Any], nbatch: int,
                       heads: set[str] | None = None) -> None:
    """Descriptor ``davg``/``dstd`` pooled over all tasks' data; each head's output statistics from its own.

    ``heads`` given (a model initialised from a frozen one): only those heads get statistics, the descriptor keeps
    the frozen ones.
    """
    nspecs = model.stat_neighbor_specs()
    if heads is not None:
        for name in heads:
            head_statistics(model, name, stat_batches(runtime[name], nspecs, nbatch))
        return
    per_task = {name: stat_batches(rt, nspecs, nbatch) for name, rt in runtime.items()}
    samples = []
    for batches in per_task.values():
        for sys_batches in batches:
            for b in sys_batches:
                nbs = model._neighbors(b["coord"], b["box"], b["atype"].astype(np.int32),
                                       {s: b["nlist"][s] for s in nspecs}, nspecs)
                samples.append((nbs, b["atype"].astype(np.int32)))
    model.descriptor.compute_input_stats(samples)
    for name, batches in per_task.items():
        head_statistics(model, name, batches)


def head_statistics(model: MultiTaskModel, task: str, batches: list[list[dict]]) -> None:
    head = model.heads[task]
    fitting = head.fitting
    ntypes = fitting.ntypes
    flat = [b for sys_batches in batches for b in sys_batches]
    if head.kind == "ener":
        means, counts = [], []
        for sys_batches in batches:
            energies = [b["energy"].reshape(-1) for b in sys_batches if float(b.get("find_energy", 0.0)) > 0]
            if energies:
                means.append(float(np.mean(np.concatenate(energies))))
                counts.append(type_counts(sys_batches[0]["atype"][0], ntypes))
        if means:
            bias = energy_bias(means, counts, rcond=fitting.rcond, atom_ener=fitting.atom_ener)
            head.out_bias.assign(bias.reshape(1, ntypes, 1))
    if head.kind == "polar" and fitting.shift_diag:
        atomic_rows, global_rows = [], []
        labels = TENSOR_LABELS["polar"]
        for b in flat:
            if float(b.get(f"find_{labels.atomic_key}", 0.0)) > 0:
                atomic_rows.append((b["atype"][0], b[labels.atomic_key][0]))
            elif float(b.get(f"find_{labels.global_key}", 0.0)) > 0:
                global_rows.append((b["atype"][0], b[labels.global_key][0]))
        fitting.constant_matrix.assign(polar_diag_shift(atomic_rows, global_rows, ntypes, fitting.sel_type,
                                                        fitting.rcond))
    if fitting.numb_fparam > 0:
        avg, istd = param_stats(np.concatenate([b["fparam"].reshape(-1, fitting.numb_fparam) for b in flat]))
        fitting.fparam_avg.assign(avg)
        fitting.fparam_inv_std.assign(istd)
    if fitting.numb_aparam > 0:
        avg, istd = param_stats(np.concatenate([b["aparam"].reshape(-1, fitting.numb_aparam) for b in flat]))
        fitting.aparam_avg.assign(avg)
        fitting.aparam_inv_std.assign(istd)


def report_neighbors(runtime: Mapping[str, Any], nspecs: Sequence[NeighborSpec],
                     model: MultiTaskModel) -> dict[str, dict[NeighborSpec, np.ndarray]]:
    """Build every neighbour list now and say, once per system, where a frame has more neighbours than ``sel``.

    DeePMD-kit silently drops the farthest neighbours in that case; mtbench does the same arithmetic (so results
    match DeePMD-kit) but says so, with the ``sel`` that would fit. A hybrid descriptor's sub-descriptors are checked
    on their own lists too: a short-range one can overflow where the merged list does not.
    """
    nspecs = list(dict.fromkeys([*nspecs, *model.stat_neighbor_specs()]))
    out: dict[str, dict[NeighborSpec, np.ndarray]] = {}
    for name, rt in runtime.items():
        out[name] = {}
        for spec in nspecs:
            worst = np.zeros(model.ntypes, dtype=np.int64)
            for data in (rt.train_data, rt.val_data):
                if data is None:
                    continue
                for path, max_counts, sel, overflow, suggestion in data.neighbor_report(spec):
                    worst = np.maximum(worst, np.asarray(max_counts)[: model.ntypes])
                    if overflow:
                        log.warning("neighbour overflow in %s (task %s): up to %s neighbours within rcut=%g but "
                                    "sel=%s; the farthest are dropped as DeePMD-kit does. A sel that fits: %s",
                                    path, name, list(map(int, max_counts)), spec.rcut, list(sel), suggestion)
            out[name][spec] = worst
    return out
