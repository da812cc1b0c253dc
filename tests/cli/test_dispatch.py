"""``mtbench <command>``: one console script dispatches to every command, with the same behaviour as the
``python -m`` forms (same help, same errors, same exit codes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mtbench.cli import COMMANDS, main, usage

ROOT = Path(__file__).resolve().parents[2]
MODULE_FORM = {"train": "mtbench.train", "freeze": "mtbench.freeze", "test": "mtbench.test",
               "compare": "mtbench.compare", "neighbor-stat": "mtbench.neighbor_stat",
               "replay": "mtbench.tracking.replay"}


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_help_lists_every_command(capsys) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == usage()
    for name in COMMANDS:
        assert f"\n  {name} " in out
    assert set(COMMANDS) == {"run", *MODULE_FORM}


@pytest.mark.parametrize("name", sorted(MODULE_FORM))
def test_subcommand_help(name: str, capsys) -> None:
    """``mtbench <cmd> --help`` is the command's own argparse help (exit 0)."""
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m {MODULE_FORM[name]}")


def test_neighbor_stat_both_spellings(tiny_data: Path, capsys) -> None:
    systems = str(tiny_data / "water_tip3p" / "train")
    assert main(["neighbor-stat", "-s", systems, "-r", "3.0"]) == 0
    a = capsys.readouterr().out
    assert main(["neighbor_stat", "-s", systems, "-r", "3.0"]) == 0
    assert capsys.readouterr().out == a and "sel: [" in a


@pytest.mark.slow
def test_console_script_equals_module_form(tmp_path: Path) -> None:
    """``mtbench train X`` and ``python -m mtbench.train X`` give the same one-line error and exit code 2."""
    missing = str(tmp_path / "nope.json")
    via_script = _run("-c", "import sys; from mtbench.cli import main; sys.exit(main())", "train", missing)
    via_module = _run("-m", "mtbench.train", missing)
    assert via_script.returncode == via_module.returncode == 2
    assert via_script.stderr == via_module.stderr
    assert via_script.stderr.startswith("mtbench.train: error: ") and via_script.stderr.count("\n") == 1


@pytest.mark.slow
def test_hydra_app_is_the_default(tmp_path: Path) -> None:
    """No command (or ``run``): Hydra overrides; a typo is one line and exit 2, as ``python -m mtbench``."""
    script = "import sys; from mtbench.cli import main; sys.exit(main())"
    bare = _run("-c", script, "training.numb_stepz=3", cwd=tmp_path)
    run = _run("-c", script, "run", "training.numb_stepz=3", cwd=tmp_path)
    module = _run("-m", "mtbench", "training.numb_stepz=3", cwd=tmp_path)
    assert bare.returncode == run.returncode == module.returncode == 2
    assert bare.stderr == run.stderr == module.stderr
    assert bare.stderr.startswith("mtbench: error: ") and bare.stderr.count("\n") == 1
    cfg = _run("-c", script, "--cfg", "job", "training.numb_steps=3", cwd=tmp_path)
    assert cfg.returncode == 0 and "numb_steps: 3" in cfg.stdout


def test_pyproject_points_at_the_dispatcher() -> None:
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"mtbench": "mtbench.cli:main"}
