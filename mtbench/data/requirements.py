"""What a model/loss needs from the data: one :class:`LabelRequirement` per label file.

The loss (or fitting) declares its labels; the data layer reads exactly those and
reports, per set, whether each one was found (``find_<key>``), like DeePMD-kit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class LabelRequirement:
    """One label read from ``set.*/<key>.npy``.

    ``ndof`` is the number of components per frame (``atomic=False``) or per atom
    (``atomic=True``). A missing file is an error when ``must``; otherwise the label
    is filled with ``default`` and its ``find_<key>`` flag is 0. Atomic tensor labels
    with ``type_sel`` may be stored for the selected atoms only.
    """

    key: str
    ndof: int
    atomic: bool
    must: bool = False
    default: float = 0.0
    type_sel: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not self.key or "/" in self.key:
            raise ValueError(f"bad label key {self.key!r}")
        if self.ndof < 1:
            raise ValueError(f"label {self.key!r}: ndof must be >= 1, got {self.ndof}")
        if self.type_sel is not None:
            if not self.atomic:
                raise ValueError(f"label {self.key!r}: type_sel needs an atomic label")
            object.__setattr__(self, "type_sel", tuple(int(t) for t in self.type_sel))


@dataclass(frozen=True)
class TensorLabels:
    """The label files of a tensor head kind: the global (per-frame) tensor and the atomic one."""

    kind: str  # head kind / fitting type: dipole | polar
    global_key: str
    atomic_key: str
    ndof: int

    def requirements(self, sel_type: Sequence[int] | None, *, global_: bool = True,
                     atomic: bool = True) -> list[LabelRequirement]:
        """The global label and/or the atomic one (over ``sel_type`` atoms), both optional."""
        req = []
        if global_:
            req.append(LabelRequirement(self.global_key, self.ndof, atomic=False))
        if atomic:
            req.append(LabelRequirement(self.atomic_key, self.ndof, atomic=True,
                                        type_sel=None if sel_type is None else tuple(sel_type)))
        return req


#: The one list of tensor label names, by head kind (DeePMD-kit's file names).
TENSOR_LABELS: dict[str, TensorLabels] = {
    t.kind: t for t in (TensorLabels("dipole", "dipole", "atomic_dipole", 3),
                        TensorLabels("polar", "polarizability", "atomic_polarizability", 9))
}

ENERGY = LabelRequirement("energy", 1, atomic=False)
FORCE = LabelRequirement("force", 3, atomic=True)
VIRIAL = LabelRequirement("virial", 9, atomic=False)
ATOM_ENER = LabelRequirement("atom_ener", 1, atomic=True)
ATOM_PREF = LabelRequirement("atom_pref", 1, atomic=True, default=1.0)
DIPOLE, ATOMIC_DIPOLE = TENSOR_LABELS["dipole"].requirements(None)
POLARIZABILITY, ATOMIC_POLARIZABILITY = TENSOR_LABELS["polar"].requirements(None)

ENERGY_LABELS: tuple[LabelRequirement, ...] = (ENERGY, FORCE, VIRIAL)
"""What an energy head predicts and a test compares with (plus ``atom_ener`` for atomic tests)."""

# The labels DeePMD-kit knows by name.
_STANDARD: dict[str, LabelRequirement] = {
    r.key: r for r in (ENERGY, FORCE, VIRIAL, ATOM_ENER, ATOM_PREF, DIPOLE, ATOMIC_DIPOLE, POLARIZABILITY,
                       ATOMIC_POLARIZABILITY)
}


def standard_requirement(
    key: str,
    *,
    must: bool = False,
    type_sel: tuple[int, ...] | list[int] | None = None,
    ndof: int | None = None,
    default: float | None = None,
) -> LabelRequirement:
    """The requirement for a label DeePMD-kit knows by name.

    ``fparam`` / ``aparam`` need ``ndof`` (numb_fparam / numb_aparam) and are always
    ``must=True``, as in DeePMD-kit.
    """
    if key in ("fparam", "aparam"):
        if ndof is None or ndof < 1:
            raise ValueError(f"{key} needs ndof >= 1")
        return LabelRequirement(
            key, ndof, atomic=(key == "aparam"), must=True, default=0.0 if default is None else default
        )
    if key not in _STANDARD:
        raise ValueError(f"unknown label {key!r}; known: {sorted(_STANDARD) + ['aparam', 'fparam']}")
    std = _STANDARD[key]
    return replace(std, ndof=std.ndof if ndof is None else ndof, must=must,
                   default=std.default if default is None else default,
                   type_sel=None if type_sel is None else tuple(type_sel))


def head_labels(kind: str, *, sel_type: Sequence[int] | None = None,
                atom_ener: bool = False) -> list[LabelRequirement]:
    """Every label a head of ``kind`` (ener, dipole, polar) can be compared with, all optional."""
    if kind == "ener":
        return [*ENERGY_LABELS, *([ATOM_ENER] if atom_ener else [])]
    return TENSOR_LABELS[kind].requirements(sel_type)


def label_requirements(labels: Iterable[LabelRequirement], *, numb_fparam: int = 0,
                       numb_aparam: int = 0) -> list[LabelRequirement]:
    """What a task's data must be read with: ``labels`` plus the frame/atomic parameters its head takes.

    Training passes its loss's labels, evaluation :func:`head_labels`; both add ``fparam``/``aparam`` here.
    """
    req = list(labels)
    if numb_fparam:
        req.append(standard_requirement("fparam", ndof=int(numb_fparam)))
    if numb_aparam:
        req.append(standard_requirement("aparam", ndof=int(numb_aparam)))
    return req


def merge_requirements(requirements: list[LabelRequirement]) -> list[LabelRequirement]:
    """Union of requirements by key (DeePMD loads the union of all tasks' labels).

    Two requirements of one key must agree on shape; ``must`` is or-ed.
    """
    merged: dict[str, LabelRequirement] = {}
    for req in requirements:
        old = merged.get(req.key)
        if old is None:
            merged[req.key] = req
            continue
        if (old.ndof, old.atomic, old.type_sel) != (req.ndof, req.atomic, req.type_sel):
            raise ValueError(f"conflicting requirements for label {req.key!r}: {old} vs {req}")
        merged[req.key] = replace(old, must=old.must or req.must)
    return list(merged.values())
