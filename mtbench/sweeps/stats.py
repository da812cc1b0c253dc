"""Replicate statistics of a sweep: mean and spread over seeds, and whether two settings differ beyond the seeds.

No SciPy (not a dependency): the two-sided 95 % Student t quantiles are tabulated, and Welch's test (unequal
variances) uses the table at the floor of the Welch-Satterthwaite degrees of freedom, which errs on "not
distinguishable".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

CONFIDENCE = 0.95
# t_{0.975}(df) for df = 1..30; beyond 30 the normal quantile is within 2 %.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: float) -> float:
    """The two-sided 95 % quantile of Student's t with ``df`` degrees of freedom (rounded down: conservative)."""
    if not math.isfinite(df) or df < 1:
        return math.inf
    k = int(math.floor(df))
    return _T975[k - 1] if k <= len(_T975) else 1.960


@dataclass(frozen=True)
class Spread:
    """Mean, sample standard deviation (n - 1; NaN for one value) and count of the finite values."""

    mean: float
    std: float
    n: int

    @property
    def sem(self) -> float:
        return self.std / math.sqrt(self.n) if self.n > 1 else math.nan


def spread(values: Iterable[float]) -> Spread:
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(vals)
    if n == 0:
        return Spread(math.nan, math.nan, 0)
    mean = sum(vals) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else math.nan
    return Spread(mean, std, n)


@dataclass(frozen=True)
class Comparison:
    """``b.mean - a.mean`` with its 95 % half-width (Welch); ``distinguishable`` when the interval excludes 0."""

    diff: float
    half_width: float

    @property
    def distinguishable(self) -> bool:
        return math.isfinite(self.half_width) and abs(self.diff) > self.half_width


def welch(a: Spread, b: Spread) -> Comparison:
    """Welch's two-sample comparison of the means at 95 %; needs two values on each side (else never
    distinguishable: one seed says nothing about the spread)."""
    diff = b.mean - a.mean
    if a.n < 2 or b.n < 2:
        return Comparison(diff, math.inf)
    va, vb = a.std ** 2 / a.n, b.std ** 2 / b.n
    se = math.sqrt(va + vb)
    if se == 0:
        return Comparison(diff, 0.0)
    df = (va + vb) ** 2 / (va ** 2 / (a.n - 1) + vb ** 2 / (b.n - 1))
    return Comparison(diff, t975(df) * se)
