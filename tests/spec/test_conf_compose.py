"""Every option of every Hydra config group composes into a spec that validates."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mtbench.errors import SpecError
from mtbench.spec import registry as reg
from mtbench.spec.compose import SPEC_KEYS, cfg_to_spec, compose_config, conf_dir
from mtbench.spec.normalize import is_multi_task, normalize_spec
from mtbench.spec.tasks import describe_sharing, task_probabilities
from mtbench.spec.validate import validate_spec

CONF = conf_dir()
ROOT_DEFAULTS = yaml.safe_load((CONF / "config.yaml").read_text())["defaults"]
ROOT_GROUPS = {next(iter(d)) for d in ROOT_DEFAULTS if isinstance(d, dict)}
BLOCK_GROUPS = {"fitting_net", "loss", "data"}  # placed under task names by fitting/ bundles
# conf/hydra/ holds Hydra's own groups (hydra/launcher=...), tested by the sweep tests
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and not p.name.startswith((".", "_")) and p.name != "hydra")
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


def _valid_spec(overrides: list[str]) -> dict:
    spec = cfg_to_spec(compose_config(overrides))
    validate_spec(spec)
    return spec


def test_every_group_is_reachable():
    assert set(GROUPS) == ROOT_GROUPS | BLOCK_GROUPS, "a new conf group must be in config.yaml's defaults or a block"
    assert len(OPTIONS) >= 30


@pytest.mark.parametrize(("group", "option"), [o for o in OPTIONS if o[0] in ROOT_GROUPS],
                         ids=[f"{g}={o}" for g, o in OPTIONS if g in ROOT_GROUPS])
def test_root_group_option_composes_and_validates(group: str, option: str):
    overrides = [f"{group}={option}"]
    try:
        spec = _valid_spec(overrides)
    except SpecError as exc:
        # descriptors without a rotation matrix cannot carry the default dipole head
        assert group == "descriptor" and "rotation matrix" in str(exc), str(exc)
        spec = _valid_spec([*overrides, "fitting=ener"])
    assert set(spec) <= set(SPEC_KEYS)
    assert normalize_spec(spec)  # the normalised form exists and is what training reads


def _block_overrides(group: str, option: str) -> list[str]:
    """Place one building block into the single-task bundle, with a fitting/loss that fits it."""
    kind = yaml.safe_load((CONF / group / f"{option}.yaml").read_text()) or {}
    if group == "data":
        return ["fitting=ener", f"data@training={option}"]
    if group == "fitting_net":
        return ["fitting=ener", f"fitting_net@model.fitting_net={option}",
                f"loss={reg.loss_for_fitting(kind['type'])}"]  # package 'loss' = group name: plain 'loss='
    fitting = next(f.name for f in reg.FITTINGS.values() if kind["type"] in f.losses)
    return ["fitting=ener", f"fitting_net@model.fitting_net={fitting}", f"loss={option}"]


@pytest.mark.parametrize(("group", "option"), [o for o in OPTIONS if o[0] in BLOCK_GROUPS],
                         ids=[f"{g}={o}" for g, o in OPTIONS if g in BLOCK_GROUPS])
def test_building_block_composes_into_a_task(group: str, option: str):
    spec = _valid_spec(_block_overrides(group, option))
    assert not is_multi_task(spec)
    assert spec["training"]["task_name"] == "water_ener"


def test_default_config_is_energy_plus_dipole():
    spec = _valid_spec([])
    assert list(spec["model"]["fitting_net_dict"]) == ["water_ener", "water_dipole"]
    assert spec["model"]["descriptor"]["type"] == "se_e2_a"
    assert spec["loss_dict"]["water_dipole"]["type"] == "tensor"
    assert spec["training"]["data_dict"]["water_dipole"]["training_data"]["systems"] == ["builtin:water_dipole/train"]
    assert task_probabilities(spec) == pytest.approx({"water_ener": 2 / 3, "water_dipole": 1 / 3})
    assert spec["training"]["numb_steps"] == 600 and spec["training"]["seed"] == 1


def test_cfg_to_spec_keeps_only_spec_keys():
    cfg = compose_config([])
    assert {"tracking", "paths"} <= set(cfg)
    spec = cfg_to_spec(cfg)
    assert set(spec) == {"model", "learning_rate", "loss_dict", "training"}
    assert isinstance(spec["model"]["type_map"], list)  # plain containers, no OmegaConf
    assert cfg.tracking.backend == "mlflow" and cfg.tracking.tracking_uri is None
    assert cfg.tracking.experiment == "mtbench" and cfg.tracking.run_name is None
    assert compose_config(["tracking=none"]).tracking.backend == "none"


def test_two_level_shared_bundle_shares_layers_0_and_2():
    spec = _valid_spec(["fitting=two_level_shared"])
    assert describe_sharing(spec) == {"shared_layers": "l0:water_tip3p+water_tip4p;l2:water_tip3p+water_tip4p"}
    for fit in spec["model"]["fitting_net_dict"].values():
        assert len(fit["layer_name"]) == len(fit["neuron"]) + 1


def test_single_task_bundle_uses_single_task_keys():
    spec = _valid_spec(["fitting=ener"])
    assert "fitting_net" in spec["model"] and "loss" in spec and "training_data" in spec["training"]
    assert "fitting_weight" not in spec["training"]


def test_debug_shortens_the_run_for_every_task():
    spec = _valid_spec(["debug=default", "fitting=ener_dipole_polar"])
    assert (spec["training"]["numb_steps"], spec["training"]["disp_freq"], spec["training"]["save_freq"]) == (
        20, 5, 10)
    for task in spec["training"]["data_dict"].values():
        assert task["validation_data"]["numb_btch"] == 1
    default = _valid_spec(["fitting=ener_dipole_polar"])
    assert all(t["validation_data"]["numb_btch"] == 3 for t in default["training"]["data_dict"].values())


def test_distributed_settings_are_plain_overrides():
    """`training.distributed=mirrored` as README shows it (no `++`): the keys are in the default config."""
    spec = _valid_spec(["training.distributed=mirrored", "training.collective_timeout=60"])
    assert (spec["training"]["distributed"], spec["training"]["collective_timeout"]) == ("mirrored", 60)
    assert _valid_spec([])["training"]["distributed"] == "none"


def test_nested_block_override_by_package():
    spec = _valid_spec(["data@training.data_dict.water_ener=water_tip4p",
                        "model.fitting_net_dict.water_ener.neuron=[16,16]"])
    assert spec["training"]["data_dict"]["water_ener"]["training_data"]["systems"] == ["builtin:water_tip4p/train"]
    assert spec["model"]["fitting_net_dict"]["water_ener"]["neuron"] == [16, 16]


def test_experiment_overrides_groups():
    cfg = compose_config(["experiment=ener_dipole_atten"])
    spec = cfg_to_spec(cfg)
    assert validate_spec(spec) == []
    assert spec["model"]["descriptor"]["type"] == "se_atten"
    assert cfg.tracking.experiment == "ener_dipole_atten"


def test_hydra_run_dirs_and_no_chdir():
    hydra_cfg = yaml.safe_load((CONF / "config.yaml").read_text())["hydra"]
    assert hydra_cfg["run"]["dir"] == "${mtbench.run_dir:${paths.output_dir}}"
    # a search (hydra/sweeper=optuna) names its own, stable folder so that it resumes; other sweepers time-stamp it
    assert hydra_cfg["sweep"]["dir"] == "${mtbench.sweep_dir:${paths.output_dir},${oc.select:hydra.sweeper.sweep_dir,null}}"
    assert hydra_cfg["sweep"]["subdir"] == "${hydra.job.num}"
    assert hydra_cfg["job"]["chdir"] is False


def test_default_run_dir_resolver_makes_distinct_folders(tmp_path: Path):
    """``${mtbench.run_dir:...}`` (the default hydra.run.dir): a fresh folder per launch, the same one on every read."""
    import os

    from omegaconf import OmegaConf

    from mtbench.cli.hydra_app import register_resolvers

    register_resolvers()
    made = set()
    for _ in range(20):
        cfg = OmegaConf.create({"out": str(tmp_path), "dir": "${mtbench.run_dir:${out}}"})
        first = cfg.dir
        assert cfg.dir == first  # read twice, one folder
        made.add(first)
    assert len(made) == 20
    assert sorted(made) == sorted(str(p) for p in (tmp_path / "runs").glob("*/*"))
    assert all(Path(d).name.endswith(f"-{os.getpid()}") or f"-{os.getpid()}-" in Path(d).name for d in made)


def test_default_sweep_dir_resolver_never_shares_a_folder(tmp_path: Path):
    """``${mtbench.sweep_dir:...}`` (the default hydra.sweep.dir): Hydra's ``multirun/<date>/<HH-MM-SS>`` name, but
    two multiruns in the same second get two folders; read twice, one folder; a chosen folder (a search's) wins and
    nothing is created."""
    from omegaconf import OmegaConf

    from mtbench.cli.hydra_app import register_resolvers

    register_resolvers()
    made = []
    for _ in range(3):
        cfg = OmegaConf.create({"out": str(tmp_path), "chosen": None, "dir": "${mtbench.sweep_dir:${out},${chosen}}"})
        assert cfg.dir == cfg.dir
        made.append(Path(cfg.dir))
    assert len(set(made)) == 3 and all(p.is_dir() and p.parent.parent.name == "multirun" for p in made)
    names = sorted(p.name for p in made)  # within one second: the stamp, then -1, -2 (or a new second's stamp)
    assert all(len(n.split("-")) in (3, 4) for n in names)
    chosen = OmegaConf.create({"out": str(tmp_path / "other"), "dir": "${mtbench.sweep_dir:${out},/x/search/s1}"})
    assert chosen.dir == "/x/search/s1" and not (tmp_path / "other").exists()


def test_output_dir_default_and_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("MTBENCH_OUTPUT_DIR", raising=False)
    assert compose_config([]).paths.output_dir == "outputs"
    monkeypatch.setenv("MTBENCH_OUTPUT_DIR", str(tmp_path))
    assert compose_config([]).paths.output_dir == str(tmp_path)


def test_conf_dir_is_absolute_and_shipped_with_the_package():
    assert CONF.is_absolute() and (CONF / "config.yaml").is_file()
    import mtbench

    assert (Path(mtbench.__file__).parent / "conf" / "config.yaml").resolve() == (CONF / "config.yaml").resolve()


def test_compose_inside_an_initialised_hydra_restores_its_state():
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        assert "fitting_net" in compose_config(["fitting=ener"]).model
        assert GlobalHydra.instance().is_initialized()
    assert not GlobalHydra.instance().is_initialized()


def test_every_yaml_states_its_purpose_in_a_comment():
    for group, option in OPTIONS:
        text = (CONF / group / f"{option}.yaml").read_text()
        assert any(line.startswith("#") and not line.startswith("# @package") for line in text.splitlines()), (
            f"{group}/{option}.yaml has no comment")
