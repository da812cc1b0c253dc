"""Seconds per training step, data-parallel vs one process: ``python benchmarks/distributed_step.py``.

Trains the tiny water spec of the test suite (energy + dipole heads) three ways and prints the steady-state
s/step (the last lcurve display block, so graph tracing is excluded):

- ``single``: one process, batch N*b;
- ``multi_worker``: ``python -m mtbench.launch --nproc N`` workers, batch b each (CPU: N processes share the cores);
- ``mirrored``: one process, MirroredStrategy over the visible GPUs (``--gpus N``), batch b per GPU; skipped
  without GPUs.

On a GPU machine (``pip install mtbench[cuda]``): ``python benchmarks/distributed_step.py --gpus 2 --steps 400``.
Results go to stdout as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def spec(data: Path, batch: int, distributed: str, steps: int, disp: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from tests.conftest import tiny_spec_dict

    s = tiny_spec_dict(data, steps=steps)
    s["learning_rate"]["scale_by_worker"] = "none"
    for d in s["training"]["data_dict"].values():
        d["training_data"]["batch_size"] = batch
    s["training"].update(distributed=distributed, disp_freq=disp, save_freq=steps)
    return s


def run(cmd: list[str], env: dict) -> None:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{(proc.stdout + proc.stderr)[-3000:]}")


def step_s(run_dir: Path) -> float:
    timing = json.loads((run_dir / "summary.json").read_text())["timing"]
    return float(timing["step_s"][-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nproc", type=int, default=2, help="replicas N (workers / GPUs)")
    p.add_argument("--batch", type=int, default=1, help="per-replica batch b")
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--gpus", type=int, default=0, help="also time MirroredStrategy over this many GPUs")
    args = p.parse_args()
    from mtbench.data.synthetic import TINY_SETTINGS, generate_water_dataset

    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    disp = max(args.steps // 3, 1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        data = generate_water_dataset(tmp_path / "data", **TINY_SETTINGS)
        n, b = args.nproc, args.batch
        cases = [("single", n * b, "none"), ("multi_worker", b, "multi_worker")]
        if args.gpus:
            cases.append(("mirrored", b, "mirrored"))
        for name, batch, dist in cases:
            inp = tmp_path / f"{name}.json"
            inp.write_text(json.dumps(spec(data, batch, dist, args.steps, disp)))
            out = tmp_path / name
            train = ["-o", str(out), "--output-dir", str(tmp_path / "o"), "--tracking", "none", "--no-progress"]
            if dist == "multi_worker":
                cmd = [sys.executable, "-m", "mtbench.launch", "--nproc", str(n), "--train", str(inp), "--", *train]
            else:
                cmd = [sys.executable, "-m", "mtbench.train", str(inp), *train]
            run(cmd, env)
            print(json.dumps({"case": name, "replicas": 1 if dist == "none" else n, "batch_per_replica": batch,
                              "steps": args.steps, "s_per_step": step_s(out)}), flush=True)


if __name__ == "__main__":
    main()
