"""What a model/loss needs from the data: one :class:`LabelRequirement` per label file.

The loss (or fitting) declares its labels; the data layer reads exactly those and
reports, per set, whether each one was found (``find_<key>``), like DeePMD-kit.
"""

from __future__ import annotations

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


# key -> (ndof, atomic, default) of the labels DeePMD-kit knows by name.
_STANDARD: dict[str, tuple[int, bool, float]] = {
    "energy": (1, False, 0.0),
    "force": (3, True, 0.0),
    "virial": (9, False, 0.0),
    "atom_ener": (1, True, 0.0),
    "atom_pref": (1, True, 1.0),
    "dipole": (3, False, 0.0),
    "atomic_dipole": (3, True, 0.0),
    "polarizability": (9, False, 0.0),
    "atomic_polarizability": (9, True, 0.0),
}

ENERGY = LabelRequirement("energy", 1, atomic=False)
FORCE = LabelRequirement("force", 3, atomic=True)
VIRIAL = LabelRequirement("virial", 9, atomic=False)
ATOM_ENER = LabelRequirement("atom_ener", 1, atomic=True)
ATOM_PREF = LabelRequirement("atom_pref", 1, atomic=True, default=1.0)
DIPOLE = LabelRequirement("dipole", 3, atomic=False)
ATOMIC_DIPOLE = LabelRequirement("atomic_dipole", 3, atomic=True)
POLARIZABILITY = LabelRequirement("polarizability", 9, atomic=False)
ATOMIC_POLARIZABILITY = LabelRequirement("atomic_polarizability", 9, atomic=True)


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
    std_ndof, atomic, std_default = _STANDARD[key]
    req = LabelRequirement(
        key,
        std_ndof if ndof is None else ndof,
        atomic=atomic,
        must=must,
        default=std_default if default is None else default,
        type_sel=None if type_sel is None else tuple(type_sel),
    )
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
