"""``dp train`` (DeePMD-kit 2.2) that also writes how many steps each multi-task head trained: ``head_steps.json``.

A multi-task comparison is only fair for the same mix of steps: an energy step (with forces) costs several dipole
steps, and 160 random draws at 2:1 land anywhere from ~60% to ~75% energy. mtbench writes its counts to
``summary.json``; DeePMD-kit 2.2 logs none, so this wrapper counts the draws of its trainer (``dp_random.choice``,
called from ``deepmd/train/trainer.py`` only to pick the next head; the data systems draw from the module itself,
not through the trainer's name, so they are not counted).

Run with DeePMD-kit's interpreter: ``python dp_head_steps.py train input.json --skip-neighbor-stat``.
"""

from __future__ import annotations

import atexit
import collections
import json
import sys
from pathlib import Path


def executed(draws: list[int]) -> list[int]:
    """The head each step ran, from the trainer's draws. DeePMD-kit 2.2.11's loop draws once before the first step
    and once per step for the next one, and runs step 0 and step 1 with the first draw's train op, step t >= 2 with
    draw t-1's (its ``next_batch_train_op = self.train_op[fitting_key]`` takes the current key)."""
    if not draws:
        return []
    steps = len(draws) - 1
    return ([draws[0]] + draws[: steps - 1])[:steps]


def main() -> None:
    import deepmd.train.trainer as trainer
    from deepmd_utils.main import main as dp_main

    real = trainer.dp_random
    draws: list[int] = []

    class CountingRandom:
        def __getattr__(self, name: str):  # noqa: ANN204
            return getattr(real, name)

        def choice(self, a, p=None):  # noqa: ANN001, ANN201
            out = real.choice(a, p=p)
            draws.append(int(out))
            return out

    trainer.dp_random = CountingRandom()
    spec = json.loads(Path(sys.argv[2]).read_text()) if len(sys.argv) > 2 else {}
    heads = list(spec.get("model", {}).get("fitting_net_dict", {}))

    def write() -> None:
        if heads and draws:
            counts = collections.Counter(heads[i] for i in executed(draws))
            Path("head_steps.json").write_text(json.dumps({"head_steps": dict(counts), "draws": len(draws)}))

    atexit.register(write)
    sys.argv = ["dp", *sys.argv[1:]]
    sys.exit(dp_main())


if __name__ == "__main__":
    main()
