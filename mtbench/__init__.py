"""mtbench: a Hydra-configured multi-task training workbench for DeePMD-style potentials."""

__version__ = "0.1.0"
