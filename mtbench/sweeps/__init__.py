"""Hydra sweeps: the multirun callback, the sweep model, readers of sweep folders and MLflow, the report."""
