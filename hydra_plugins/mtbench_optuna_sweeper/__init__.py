"""mtbench's Optuna (>= 4) sweeper for Hydra: ``python -m mtbench -m hydra/sweeper=optuna ...``.

Hydra finds it in the ``hydra_plugins`` namespace package; the search itself is :mod:`mtbench.sweeps.search`.
"""
