"""Import shim (one release): the ASE calculator moved to :mod:`mtbench.inference.calculator`."""

from mtbench.inference.calculator import CalculatorInputError, MTBenchCalculator

__all__ = ["CalculatorInputError", "MTBenchCalculator"]
