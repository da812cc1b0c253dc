"""Virtual environments for the reference tools, installed from the package registry on first use.

DeePMD-kit 2.2.11 cannot share mtbench's environment (it needs TensorFlow 2.16 and NumPy 1.x), so each reference
tool gets its own venv under ``$MTBENCH_BENCH_VENVS`` (default ``~/.cache/mtbench/venvs``). A venv counts as
installed once its marker file exists, so an interrupted install is redone, never half-used.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MARKER = ".mtbench-bench-ok"


@dataclass(frozen=True)
class VenvRecipe:
    """What to pip-install for one reference tool, and which distribution proves the install worked."""

    name: str
    packages: tuple[str, ...]
    check_dist: str = "deepmd-kit"
    check_import: str = "deepmd"
    note: str = ""


RECIPES: dict[str, VenvRecipe] = {
    "deepmd-kit-2.2.11": VenvRecipe(
        "deepmd-kit-2.2.11", ("deepmd-kit[cpu]==2.2.11", "tensorflow-cpu==2.16.2"),
        note="TensorFlow 2.16.2 + NumPy 1.26; about 1.5 GB"),
    "deepmd-kit-3.2.0": VenvRecipe(
        "deepmd-kit-3.2.0", ("deepmd-kit[cpu]==3.2.0",), note="TensorFlow 2.21 backend"),
    "deepmd-kit-3.2.0-torch": VenvRecipe(
        "deepmd-kit-3.2.0-torch", ("deepmd-kit[cpu,torch]==3.2.0",),
        check_import="torch", note="TensorFlow and PyTorch backends; PyTorch from PyPI is several GB"),
}


def default_venv_root() -> Path:
    env = os.environ.get("MTBENCH_BENCH_VENVS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mtbench" / "venvs"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def dist_versions(python: Path | str, dists: tuple[str, ...]) -> dict[str, str | None]:
    """Installed versions of ``dists`` in the interpreter ``python`` (cheap: no TensorFlow import)."""
    code = ("import importlib.metadata as m, json, sys\n"
            "out = {}\n"
            "for d in sys.argv[1:]:\n"
            "    try: out[d] = m.version(d)\n"
            "    except m.PackageNotFoundError: out[d] = None\n"
            "print(json.dumps(out))")
    res = subprocess.run([str(python), "-c", code, *dists], capture_output=True, text=True, check=False,
                         env=clean_env())
    if res.returncode != 0:
        return {d: None for d in dists}
    return json.loads(res.stdout.strip().splitlines()[-1])


def clean_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without the caller's venv, so a tool venv's interpreter sees only its own packages."""
    env = dict(os.environ if base is None else base)
    for key in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
        env.pop(key, None)
    env["PYTHONNOUSERSITE"] = "1"
    return env


def ensure_venv(recipe: VenvRecipe, root: Path, *, log=print) -> Path:
    """The venv of ``recipe`` under ``root``, created and pip-installed if absent; returns its folder."""
    venv = root / recipe.name
    marker = venv / MARKER
    if marker.is_file():
        return venv
    if venv.exists():
        if not (venv / "pyvenv.cfg").is_file():
            raise RuntimeError(f"{venv} exists and is not a virtual environment; remove it or set MTBENCH_BENCH_VENVS")
        log(f"[bench] {venv} has no {MARKER} (interrupted install?): recreating it")
        shutil.rmtree(venv)
    root.mkdir(parents=True, exist_ok=True)
    log(f"[bench] installing {' '.join(recipe.packages)} into {venv} ({recipe.note}); this takes a few minutes once")
    base_python = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True, env=clean_env())
    py = venv_python(venv)
    pip_log = root / f"{recipe.name}.pip.log"
    with open(pip_log, "w") as fh:
        res = subprocess.run([str(py), "-m", "pip", "install", "--disable-pip-version-check", *recipe.packages],
                             stdout=fh, stderr=subprocess.STDOUT, env=clean_env(), check=False)
    if res.returncode != 0:
        tail = pip_log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"pip install {' '.join(recipe.packages)} failed (full log: {pip_log}):\n{tail}")
    check = subprocess.run([str(py), "-c", f"import {recipe.check_import}"], capture_output=True, text=True,
                           env=clean_env(), check=False)
    if check.returncode != 0:
        raise RuntimeError(f"{venv}: 'import {recipe.check_import}' fails after install:\n{check.stderr[-2000:]}")
    versions = dist_versions(py, (recipe.check_dist, "tensorflow", "tensorflow-cpu", "numpy", "torch"))
    marker.write_text(json.dumps({"packages": recipe.packages, "versions": versions}, indent=1))
    log(f"[bench] installed: {versions}")
    return venv
