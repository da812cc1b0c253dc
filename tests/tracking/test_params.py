"""Spec -> MLflow params, URI resolution and the tracker factory (no MLflow store needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from mtbench.errors import SpecError
from mtbench.tracking import NullTracker, default_tracking_uri, flatten_params, make_tracker
from mtbench.tracking.params import KEY_LIMIT, TRUNCATION_MARKER, sanitize_key, truncate
from mtbench.tracking.store import artifact_root, resolve_tracking_uri, sqlite_path, ui_hint

SPEC = {
    "model": {
        "type_map": ["O", "H"],
        "descriptor": {"type": "se_e2_a", "sel": [46, 92], "rcut": 6.0, "resnet_dt": False,
                       "seed": None},
        "fitting_net_dict": {"water_ener": {"neuron": [240, 240], "precision": "float64"}},
    },
    "training": {"fitting_weight": {"water_ener": 1}, "extra": {}},
}


def test_flatten_params_dotted_keys_and_json_lists():
    flat = flatten_params(SPEC)
    assert flat["model.type_map"] == '["O", "H"]'
    assert flat["model.descriptor.sel"] == "[46, 92]"
    assert flat["model.descriptor.rcut"] == "6.0"
    assert flat["model.descriptor.resnet_dt"] == "false"
    assert flat["model.descriptor.seed"] == "null"
    assert flat["model.descriptor.type"] == "se_e2_a"
    assert flat["model.fitting_net_dict.water_ener.neuron"] == "[240, 240]"
    assert flat["training.fitting_weight.water_ener"] == "1"
    assert flat["training.extra"] == "{}"
    assert all(isinstance(v, str) for v in flat.values())
    assert len(flat) == 10


def test_flatten_params_prefix_and_list_of_dicts():
    flat = flatten_params({"list": [{"type": "se_e2_a", "sel": [1]}]}, prefix="model.descriptor")
    assert flat == {"model.descriptor.list": '[{"type": "se_e2_a", "sel": [1]}]'}
    assert json.loads(flat["model.descriptor.list"])[0]["sel"] == [1]


def test_flatten_params_omegaconf_and_numpy():
    cfg = OmegaConf.create({"a": {"b": [1, 2], "c": 0.5}})
    assert flatten_params(cfg) == {"a.b": "[1, 2]", "a.c": "0.5"}
    flat = flatten_params({"x": np.float32(0.25), "y": np.arange(3), "p": Path("/d/f")})
    assert flat == {"x": "0.25", "y": "[0, 1, 2]", "p": "/d/f"}


def test_truncate_marks_cut_values():
    text, cut = truncate("x" * 7000, 6000)
    assert cut and len(text) == 6000 and text.endswith(TRUNCATION_MARKER)
    assert truncate("short", 6000) == ("short", False)


@pytest.mark.parametrize("raw, clean", [
    ("train/w/rmse", "train/w/rmse"),
    ("a//b/", "a/b"),
    ("/a/./b", "a/b"),
    ("x*y:z", "x_y_z"),
    ("../up", "_/up"),
])
def test_sanitize_key(raw, clean):
    assert sanitize_key(raw) == clean


def test_sanitize_key_caps_length():
    assert len(sanitize_key("k" * 300)) == KEY_LIMIT


def test_default_tracking_uri_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expected = f"sqlite:///{tmp_path.resolve()}/outputs/mlflow.db"
    assert default_tracking_uri(Path("outputs")) == expected
    assert default_tracking_uri("outputs").startswith("sqlite:////")


def test_uri_precedence_env_then_config_then_default(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "outputs"
    assert resolve_tracking_uri(None, out) == default_tracking_uri(out)
    assert resolve_tracking_uri("http://mlflow.example:5000", out) == "http://mlflow.example:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://shared:5000")
    assert resolve_tracking_uri("http://mlflow.example:5000", out) == "http://shared:5000"
    assert resolve_tracking_uri(None, out) == "http://shared:5000"


def test_relative_sqlite_uris_become_absolute(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    expected = f"sqlite:///{tmp_path.resolve()}/store/m.db"
    assert resolve_tracking_uri("sqlite:///store/m.db", "outputs") == expected
    assert resolve_tracking_uri("store/m.db", "outputs") == expected


def test_artifact_root_next_to_sqlite_file(tmp_path):
    uri = default_tracking_uri(tmp_path / "outputs")
    assert sqlite_path(uri) == tmp_path.resolve() / "outputs" / "mlflow.db"
    assert artifact_root(uri, tmp_path) == tmp_path.resolve() / "outputs" / "mlartifacts"
    assert artifact_root("http://h:5000", tmp_path) is None
    pg_root = artifact_root("postgresql://u@h/db", tmp_path / "o")
    assert pg_root == (tmp_path / "o").resolve() / "mlartifacts"


def test_ui_hint():
    hint = ui_hint("sqlite:////abs/outputs/mlflow.db", "3", "abc")
    assert hint == ("open the UI: mlflow ui --backend-store-uri sqlite:////abs/outputs/mlflow.db"
                    " --host 127.0.0.1 --workers 1"
                    " (then http://127.0.0.1:5000/#/experiments/3/runs/abc)")
    assert ui_hint("http://h:5000/", "3", "abc") == (
        "open the UI: http://h:5000/#/experiments/3/runs/abc")


def test_make_tracker_backends(tmp_path):
    assert isinstance(make_tracker(None, tmp_path), NullTracker)
    assert isinstance(make_tracker({"backend": "none"}, tmp_path), NullTracker)
    with pytest.raises(SpecError, match=r"^tracking\.backend: 'wandb'"):
        make_tracker({"backend": "wandb"}, tmp_path)
    with pytest.raises(SpecError, match=r"^tracking\.trackinguri: unknown"):
        make_tracker({"backend": "mlflow", "trackinguri": "x"}, tmp_path)
    with pytest.raises(SpecError, match=r"^tracking\.flush_every"):
        make_tracker({"backend": "mlflow", "flush_every": "often"}, tmp_path)


def test_make_tracker_mlflow_reads_config(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracker = make_tracker(OmegaConf.create({"backend": "mlflow", "tracking_uri": None,
                                             "experiment": "e", "flush_every": 7}), tmp_path)
    assert tracker.tracking_uri == default_tracking_uri(tmp_path)
    assert tracker.flush_every == 7
    assert tracker.run_id is None


def test_tracking_none_never_imports_mlflow(tmp_path):
    """`tracking=none` (and building an MLflow tracker) must not pay MLflow's import cost."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from mtbench.tracking import make_tracker\n"
        f"t = make_tracker({{'backend': 'none'}}, Path({str(tmp_path)!r}))\n"
        "t.start(experiment='e', run_name=None, params={'a': 1}, tags={}, run_dir=Path('.'))\n"
        "t.log_metrics({'lr': 1.0}, step=0); t.finish(); assert t.run_id is None\n"
        f"make_tracker({{'backend': 'mlflow'}}, Path({str(tmp_path)!r}))\n"
        "print('mlflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                         timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
