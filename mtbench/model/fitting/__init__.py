"""Fitting nets: per-atom features -> per-atom outputs. Importing this package registers them all."""

from mtbench.model.fitting.base import FITTINGS, Fitting, SharedLayers, fitting_class
from mtbench.model.fitting import dipole, ener, polar  # noqa: F401  (registers)

__all__ = ["FITTINGS", "Fitting", "SharedLayers", "fitting_class"]
