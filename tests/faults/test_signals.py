"""Real signals on a real training process: stop at a step boundary, checkpoint that step, resume hint, exit code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mtbench.rundir import RunDir
from tests.conftest import tiny_spec_dict
from tests.faults.waiting import wait_until


def _start(tmp_path: Path, tiny_data: Path) -> tuple[subprocess.Popen, Path]:
    spec = tiny_spec_dict(tiny_data, tasks=("water_ener",), steps=100000)
    spec["training"].update(disp_freq=5, save_freq=100000)
    (tmp_path / "input.json").write_text(json.dumps(spec))
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "mtbench.train", str(tmp_path / "input.json"), "-o", str(run_dir),
                             "--tracking", "none", "--no-progress", "--output-dir", str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return proc, run_dir


def _wait_for_steps(proc: subprocess.Popen, run_dir: Path, lines: int = 3, timeout: float = 240.0) -> None:
    def ready() -> bool:
        lcurves = list(run_dir.glob("lcurve*.out"))
        return bool(lcurves) and sum(1 for ln in lcurves[0].read_text().splitlines() if not ln.startswith("#")) >= lines

    wait_until(proc, ready, "the first display steps", timeout, poll=0.2)


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGUSR1, 143)])
def test_signal_stops_at_a_step_with_a_checkpoint(tmp_path: Path, tiny_data: Path, sig: int, code: int) -> None:
    proc, run_dir = _start(tmp_path, tiny_data)
    _wait_for_steps(proc, run_dir)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    assert "Traceback" not in err
    resume_lines = [ln for ln in err.splitlines() if "resume with:" in ln]
    assert len(resume_lines) == 1 and f"--restart {run_dir.resolve()}" in resume_lines[0]
    steps = [s for s, _ in RunDir(run_dir).step_checkpoints()]
    assert steps and steps[-1] >= 10  # the step the signal arrived at, not the (never reached) save_freq
    assert f"at step {steps[-1]}" in resume_lines[0]
    assert not list(run_dir.rglob("*.tmp"))


def test_default_run_dirs_never_collide(tmp_path: Path) -> None:
    from mtbench.rundir import new_run_dir as default_run_dir

    dirs = {default_run_dir(tmp_path) for _ in range(50)}
    assert len(dirs) == 50 and all(d.is_dir() and str(os.getpid()) in d.name for d in dirs)
