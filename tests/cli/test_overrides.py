"""Command-line overrides are checked before Hydra runs: a typo is one line naming it, exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mtbench.cli.overrides import OverrideChecker, OverrideError, check_overrides
from mtbench.spec.compose import CONFIG_NAME, VERSION_BASE, conf_dir

CONF = dict(config_dir=str(conf_dir()), config_name=CONFIG_NAME, version_base=VERSION_BASE)

BAD = [  # (argv, words the one error line must contain)
    (["descritor=se_atten"], ["descritor", "did you mean 'descriptor'", "se_atten_v2"]),
    (["+descritor=se_atten"], ["+descritor=se_atten", "did you mean 'descriptor'"]),
    (["descriptor=se_atn"], ["group 'descriptor' has no option 'se_atn'", "did you mean 'se_atten'"]),
    (["-m", "descriptor=se_e2_a,se_atn"], ["no option 'se_atn'"]),
    (["fitting_nett@model.fitting_net_dict.x=ener"], ["no config group 'fitting_nett'", "'fitting_net'"]),
    (["trainin.numb_steps=3"], ["'trainin'", "did you mean 'training'"]),
    (["training.numb_steps=["], ["training.numb_steps=["]),
    (["hydra/launcher=joblibb"], ["hydra/launcher", "'joblib'"]),
]


@pytest.mark.parametrize("argv,words", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_override_is_one_error_naming_it(argv, words):
    with pytest.raises(OverrideError) as info:
        check_overrides(argv, **CONF)
    msg = str(info.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


@pytest.mark.parametrize("argv", [
    [], ["descriptor=se_atten", "training.numb_steps=3"], ["-m", "training.fitting_weight.water_dipole=1,5"],
    ["data@training.data_dict.water_ener=water_tip4p"], ["~training.seed"], ["hydra/launcher=joblib"],
    ["--cfg", "job", "descritor=x"],  # Hydra's own flags: left to Hydra
])
def test_good_overrides_pass(argv):
    check_overrides(argv, **CONF)


def test_missing_launcher_plugin_names_the_extra():
    checker = OverrideChecker(["hydra/launcher"], {"hydra/launcher": ["basic"]}, ["model"])
    from hydra.core.override_parser.overrides_parser import OverridesParser

    (override,) = OverridesParser.create().parse_overrides(["hydra/launcher=joblib"])
    with pytest.raises(OverrideError, match=r"pip install 'mtbench\[sweeps\]'"):
        checker.check(override)


@pytest.mark.slow
def test_typo_exits_2_with_one_line_and_trains_nothing(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mtbench", "+descritor=se_atten", f"paths.output_dir={tmp_path}"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("mtbench: error: +descritor=se_atten"), proc.stderr
    assert "Traceback" not in proc.stderr and "HYDRA_FULL_ERROR" not in proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_folder_named_mtbench_does_not_shadow_the_package_in_jobs(tmp_path):
    """A child process started by a running mtbench command (a sweep job) imports the real package, though its
    working directory holds a folder named ``mtbench`` (without the fix: a namespace package, no __version__)."""
    import os
    from pathlib import Path

    import mtbench

    (tmp_path / "mtbench").mkdir()  # the user's own folder, no __init__.py
    root = str(Path(mtbench.__file__).resolve().parent.parent)
    child = "import mtbench; print(mtbench.__version__)"
    code = (f"import subprocess, sys; sys.path.insert(0, {root!r}); "  # the parent finds the package, its env does not
            "from mtbench.runtime import expose_package_to_children; expose_package_to_children(); "
            f"r = subprocess.run([sys.executable, '-c', {child!r}], capture_output=True, text=True); "
            "print(r.stdout.strip() or r.stderr.strip().splitlines()[-1])")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=120)
    assert proc.stdout.strip() == mtbench.__version__, proc.stdout + proc.stderr
