"""Helpers of ``benchmarks/run.py``: tool environments, process monitoring, data, inputs and reports.

Not part of the mtbench package and not imported by its tests; ``run.py`` puts this folder on ``sys.path``.
"""
