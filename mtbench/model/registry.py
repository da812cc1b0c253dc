"""Model classes by type name, one table per kind (descriptor, fitting).

The names and aliases have one owner, :mod:`mtbench.spec.registry`: a class registers under one of its canonical
names, and a lookup resolves aliases there. This module only keeps which class implements which name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from mtbench.spec import registry as reg

C = TypeVar("C", bound=type)


class ClassRegistry(Generic[C]):
    """``kind`` (a kind of :mod:`mtbench.spec.registry`: ``descriptor``, ``fitting``) -> the classes of its types."""

    def __init__(self, kind: str, entries: Mapping[str, Any]) -> None:
        self.kind = kind
        self.entries = entries  # the spec registry's table of this kind: canonical name -> TypeEntry
        self.classes: dict[str, C] = {}

    def register(self, name: str) -> Callable[[C], C]:
        """Class decorator: register under a canonical type of the spec registry (sets ``cls.type_name``)."""
        if name not in self.entries:
            raise ValueError(f"{name!r} is not a canonical {self.kind} type of mtbench.spec.registry "
                             f"(known: {', '.join(self.entries)}); add a TypeEntry there first")

        def deco(cls: C) -> C:
            self.classes[name] = cls
            cls.type_name = name
            return cls

        return deco

    def lookup(self, type_name: str) -> C:
        """The class of a type or alias (aliases resolve in the spec registry)."""
        name = reg.canonical_type(self.kind, type_name)
        if name is None or name not in self.classes:
            raise KeyError(f"unknown {self.kind} type {type_name!r}; known: {reg.known_types(self.kind)}")
        return self.classes[name]
