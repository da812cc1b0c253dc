"""The commands, and ``mtbench <command> ...``: every command under one console script, like ``dp <command>``.

Each command (a module here) parses its arguments, calls its function in :mod:`mtbench.api` and prints.

``mtbench train input.json`` is ``python -m mtbench.train input.json``, and so on for each command in
:data:`COMMANDS`; ``mtbench [hydra overrides]`` (or ``mtbench run [overrides]``) is ``python -m mtbench``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# sub-command -> (module whose main(argv) runs it, one line for --help); the python -m form in the comment
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("mtbench.cli.hydra_app", "compose a config with Hydra and train it (python -m mtbench; the default)"),
    "train": ("mtbench.cli.train", "train a DeePMD-style input.json (python -m mtbench.train)"),
    "freeze": ("mtbench.cli.freeze", "freeze a trained model: per head, united, or .dp (python -m mtbench.freeze)"),
    "test": ("mtbench.cli.test", "test a model's heads on labelled data, like dp test (python -m mtbench.test)"),
    "compare": ("mtbench.cli.compare", "compare the jobs of a sweep (python -m mtbench.compare)"),
    "neighbor-stat": ("mtbench.cli.neighbor_stat",
                      "neighbour statistics and the sel to use (python -m mtbench.neighbor_stat)"),
    "replay": ("mtbench.cli.replay", "send a run's tracking backlog (python -m mtbench.tracking.replay)"),
}
ALIASES = {"neighbor_stat": "neighbor-stat"}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: mtbench [hydra overrides] | mtbench <command> [options]", "",
             "commands (mtbench <command> --help for each):"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "With no command the arguments are Hydra overrides of `mtbench run`, e.g.",
              "  mtbench training.numb_steps=500          mtbench -m training.fitting_weight.water_dipole=1,5",
              "  mtbench --cfg job                        mtbench run --help   (Hydra's help and config groups)"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a command's ``main``; returns its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name = ALIASES.get(args[0], args[0]) if args else "run"
    if name in COMMANDS:
        args = args[1:]
    else:
        name = "run"  # overrides, --cfg, -m ...: the Hydra app
    module = importlib.import_module(COMMANDS[name][0])
    result = module.main(args)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
