"""Spec values DeePMD-kit takes from the training data: ``sel: "auto[:factor]"`` and a missing ``model.type_map``.

:func:`resolve_from_data` runs once per run, after normalisation and before anything is built, and writes
concrete values into the spec, so the run's ``input.json`` records the ``sel`` and ``type_map`` it trained with.

The rule is DeePMD-kit's ``update_sel``: per neighbour type (one total for a mixed-type descriptor such as
se_atten), the most neighbours any atom of the training data has within ``rcut``, times the factor (1.1 unless
``auto:<factor>``), truncated and rounded up to a multiple of 4. Multi-task specs share one descriptor, so the
statistics run over every task's training data. Without ``model.type_map`` the types are data type indices,
named ``type_0``, ``type_1``, ... (:func:`mtbench.data.system.index_type_map`).

This module sits in the spec layer because it rewrites spec keys; it reads data through :mod:`mtbench.data`
(spec -> data, the direction :mod:`mtbench.spec.paths` already uses for ``builtin:`` data; data never imports spec).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mtbench.errors import SpecError
from mtbench.spec import registry as reg
from mtbench.spec.normalize import is_multi_task, join
from mtbench.spec.paths import resolve_system_path, system_list


def auto_sel_ratio(sel: Any) -> float | None:
    """The factor of ``"auto"`` (DeePMD-kit's 1.1) or ``"auto:<factor>"``; None for a given sel."""
    from mtbench.data.neighbor import AUTO_SEL_RATIO

    if not isinstance(sel, str):
        return None
    head, _, factor = sel.partition(":")
    if head != "auto":
        return None
    return float(factor) if factor else AUTO_SEL_RATIO


def needs_data(spec: Mapping[str, Any]) -> bool:
    """Whether a normalised spec has a value to take from the data (an automatic sel or no type_map)."""
    model = spec["model"]
    return "type_map" not in model or any(True for _ in _auto_descriptors(model["descriptor"], "model.descriptor"))


def resolve_from_data(spec: Mapping[str, Any], base_dir: Path | None) -> tuple[dict[str, Any], list[str]]:
    """A copy of the normalised ``spec`` with ``type_map`` and every automatic ``sel`` filled in.

    Returns the new spec and one log line per value chosen, saying what and why.
    """
    out = copy.deepcopy(dict(spec))
    notes: list[str] = []
    if not needs_data(out):
        return out, notes
    from mtbench.data.system import expand_systems

    model = out["model"]
    where = _training_sections(out)
    paths: list[str] = []
    for key, systems in where:
        resolved = [resolve_system_path(s, base_dir) for s in system_list(systems)]
        paths.extend(p for p in expand_systems(resolved, key=join(key, "systems")) if p not in paths)
    origin = f"{len(paths)} training system(s)" + (f" of {len(where)} tasks" if len(where) > 1 else "")
    if "type_map" not in model:
        type_map = _index_type_map(paths, model["descriptor"])
        out["model"] = model = {"type_map": type_map, **model}
        notes.append(f"model.type_map: not given, so atom types are data type indices (DeePMD-kit v2): "
                     f"{len(type_map)} types from the {origin}, named {', '.join(type_map)}")
    for path, desc in _auto_descriptors(model["descriptor"], "model.descriptor"):
        ratio = auto_sel_ratio(desc["sel"])
        assert ratio is not None
        mixed = reg.DESCRIPTORS[desc["type"]].mixed_types
        counts = max_neighbor_counts(paths, model["type_map"], float(desc["rcut"]), mixed_types=mixed)
        sel = auto_sel(counts, ratio)
        given = desc["sel"]
        desc["sel"] = sel[0] if mixed else sel
        what = "neighbours of any type" if mixed else "neighbours per type " + f"({', '.join(model['type_map'])})"
        notes.append(f"{join(path, 'sel')}: {given!r} -> {desc['sel']}: most {what} within rcut {desc['rcut']:g} "
                     f"in the {origin} is {counts[0] if mixed else counts}, times {ratio:g}, rounded up to a "
                     "multiple of 4 (DeePMD-kit's update_sel rule)")
    return out, notes


def auto_sel(max_counts: list[int], ratio: float) -> list[int]:
    """DeePMD-kit's automatic sel from the largest neighbour counts."""
    from mtbench.data.neighbor import wrap_up_4

    return [wrap_up_4(c * ratio) for c in max_counts]


def max_neighbor_counts(paths: list[str], type_map: list[str], rcut: float, *, mixed_types: bool) -> list[int]:
    """The most neighbours within ``rcut`` any atom of the systems has: per type, or ``[total]`` if mixed."""
    from mtbench.data.neighbor import NeighborSpec
    from mtbench.data.system import load_systems

    nspec = NeighborSpec(rcut, (1,), True)  # counts are taken before truncation to sel
    width = 1 if mixed_types else len(type_map)
    best = [0] * width
    for path in paths:
        for system in load_systems(path, type_map, []):
            data = system.neighbor_data(nspec)
            counts = [int(data.max_total)] if mixed_types else [int(c) for c in data.max_counts]
            best = [max(a, b) for a, b in zip(best, counts, strict=True)]
    return best


# ------------------------------------------------------------------------------------ helpers


def _auto_descriptors(desc: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if desc["type"] == "hybrid":
        for i, sub in enumerate(desc["list"]):
            yield from _auto_descriptors(sub, f"{path}.list[{i}]")
    elif auto_sel_ratio(desc.get("sel")) is not None:
        yield path, desc


def _listed_ntypes(desc: Mapping[str, Any]) -> int:
    """Types implied by a per-type ``sel`` list (DeePMD-kit v2 counts types this way when type_map is absent)."""
    if desc["type"] == "hybrid":
        return max((_listed_ntypes(sub) for sub in desc["list"]), default=0)
    sel = desc.get("sel")
    if isinstance(sel, list) and not reg.DESCRIPTORS[desc["type"]].mixed_types:
        return len(sel)
    return 0


def _training_sections(spec: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(spec path, systems) of every task's training data."""
    train = spec["training"]
    if is_multi_task(spec):
        return [(join(join("training.data_dict", t), "training_data"), d["training_data"]["systems"])
                for t, d in train["data_dict"].items()]
    return [("training.training_data", train["training_data"]["systems"])]


def _index_type_map(paths: list[str], descriptor: Mapping[str, Any]) -> list[str]:
    """Types by index: as many as the data (or a per-type sel) has; ``type_map.raw`` files must agree."""
    from mtbench.data.system import index_type_map, stored_types

    ntypes = _listed_ntypes(descriptor)
    names: dict[int, tuple[str, str]] = {}  # index -> (name, file that says so)
    for path in paths:
        for raw in stored_types(path):
            if raw.types.size:
                ntypes = max(ntypes, int(raw.types.max()) + 1)
            for i, name in enumerate(raw.type_names or []):
                ntypes = max(ntypes, i + 1)
                seen = names.setdefault(i, (name, str(raw.names_source)))
                if seen[0] != name:
                    raise SpecError("model.type_map", f"is not given, so types are taken by index, but "
                                    f"{seen[1]} calls type {i} {seen[0]!r} and {raw.names_source} calls it "
                                    f"{name!r}; give model.type_map to map types by name")
    if ntypes == 0:
        raise SpecError("model.type_map", "is not given and the training data has no atoms to count types from")
    return index_type_map(ntypes)
