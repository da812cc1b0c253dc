"""The Optuna sweeper's parts without training: the search space, the objectives, the Pareto rule, the plugin's
config in mtbench's Hydra config."""

from __future__ import annotations

import itertools
import math
import pickle
import random
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from mtbench.sweeps.pareto import dominates, front_2d, non_dominated  # noqa: E402
from mtbench.sweeps.search import (  # noqa: E402
    SearchError,
    default_storage,
    objective_values,
    parse_search_space,
)
from mtbench.train.run import RunResult  # noqa: E402


def space(*args: str, params: dict | None = None):
    searched, fixed = parse_search_space(params or {}, list(args))
    return {p.key: p.distribution for p in searched}, fixed


def test_sweep_syntax_becomes_optuna_distributions() -> None:
    d, fixed = space("training.fitting_weight.water_dipole=tag(log,interval(0.1,100))",
                     "learning_rate.start_lr=interval(0.0005,0.005)",
                     "model.descriptor.neuron.0=int(interval(4,16))",
                     "training.seed=range(1,7,2)",
                     "descriptor=se_e2_a,se_atten",
                     "model.fitting_net_dict.water_tip4p.layer_name=choice([l0,null,null,null],[null,null,null,null])",
                     "debug=fast", "training.numb_steps=6")
    od = optuna.distributions
    assert d["training.fitting_weight.water_dipole"] == od.FloatDistribution(0.1, 100.0, log=True)
    assert d["learning_rate.start_lr"] == od.FloatDistribution(0.0005, 0.005)
    assert d["model.descriptor.neuron.0"] == od.IntDistribution(4, 16)
    assert d["training.seed"] == od.IntDistribution(1, 5, step=2)  # range's stop is excluded: 1, 3, 5
    assert d["descriptor"] == od.CategoricalDistribution(["se_e2_a", "se_atten"])
    # list choices (layer_name sharing) are kept as the override text Hydra parses back into the list
    assert d["model.fitting_net_dict.water_tip4p.layer_name"].choices == (
        "[l0,null,null,null]", "[null,null,null,null]")
    assert fixed == ["debug=fast", "training.numb_steps=6"]


def test_command_line_wins_over_sweeper_params() -> None:
    d, fixed = space("training.fitting_weight.water_dipole=choice(1,2)",
                     params={"training.fitting_weight.water_dipole": "tag(log,interval(1,10))",
                             "learning_rate.start_lr": "0.001,0.002"})
    assert d["training.fitting_weight.water_dipole"].choices == ("1", "2")
    assert d["learning_rate.start_lr"].choices == ("0.001", "0.002")
    assert fixed == []


def test_log_scale_needs_a_range() -> None:
    with pytest.raises(SearchError, match="interval"):
        space("a=tag(log,choice(1,10))")


def test_objectives_per_task_or_weighted() -> None:
    r = RunResult(9.0, {"water_ener": 0.5, "water_dipole": 2.0}, {"water_ener": "final rmse_f"})
    assert objective_values(r, ["water_ener", "water_dipole"], "tasks", {}) == [0.5, 2.0]
    assert objective_values(r, ["water_ener", "water_dipole"], "weighted", {}) == [1.25]
    assert objective_values(r, ["water_ener", "water_dipole"], "weighted", {"water_dipole": 3.0}) == \
        [pytest.approx((0.5 + 3 * 2.0) / 4)]
    with pytest.raises(SearchError, match="water_polar"):
        objective_values(r, ["water_ener", "water_polar"], "tasks", {})


def test_run_result_is_the_objective_and_survives_pickling() -> None:
    """joblib and submitit send the job's return value back by pickle; any sweeper may take it as a float."""
    r = pickle.loads(pickle.dumps(RunResult(1.5, {"a": 0.25}, {"a": "final rmse"})))
    assert float(r) == 1.5 and r + 1 == 2.5
    assert (r.per_task, r.metrics) == ({"a": 0.25}, {"a": "final rmse"})


def test_run_result_from_summary_uses_the_final_evaluation() -> None:
    summary = {"objective": 3.0, "final_eval": {"final": {
        "e": {"metrics": {"rmse_e": 2.0, "rmse_f": 0.125, "rmse_ea": 0.5}},
        "d": {"metrics": {"rmse": 0.75, "rmse_atomic": float("nan")}}}}}
    r = RunResult.from_summary(summary)
    assert r.per_task == {"e": 0.125, "d": 0.75}
    assert r.metrics == {"e": "final rmse_f", "d": "final rmse"}


def test_storage_is_beside_the_sweep_folder(tmp_path: Path) -> None:
    assert default_storage(tmp_path / "search" / "w") == f"sqlite:///{tmp_path / 'search' / 'w.optuna.db'}"


def brute_force_front(points: list[tuple[float, ...]]) -> set[int]:
    ok = [i for i, p in enumerate(points) if all(math.isfinite(v) for v in p)]
    return {i for i in ok if not any(all(a <= b for a, b in zip(points[j], points[i])) and points[j] != points[i]
                                     for j in ok)}


def test_non_dominated_against_the_definition() -> None:
    rng = random.Random(7)
    for n_obj, n in itertools.product((2, 3), (1, 5, 30)):
        pts = [tuple(rng.choice([rng.random(), round(rng.random(), 1)]) for _ in range(n_obj)) for _ in range(n)]
        pts.append(tuple([math.nan] * n_obj))
        front = non_dominated(pts)
        assert set(front) == brute_force_front(pts)
        for i in front:  # nothing in the set is dominated, everything outside it is (or is not finite)
            assert not any(dominates(pts[j], pts[i]) for j in range(len(pts)) if j != i)
        for i in set(range(len(pts))) - set(front):
            assert not all(map(math.isfinite, pts[i])) or any(dominates(pts[j], pts[i]) for j in front)


def test_equal_points_are_both_on_the_front_and_2d_is_sorted() -> None:
    pts = [(1.0, 2.0), (1.0, 2.0), (0.5, 3.0), (2.0, 2.5), (3.0, 0.1)]
    assert non_dominated(pts) == [0, 1, 2, 4]
    assert front_2d(pts) == [2, 0, 1, 4]


def compose(overrides: list[str]):
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from mtbench.spec.compose import conf_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        return GlobalHydra.instance().hydra.compose_config(
            "config", ["hydra/sweeper=optuna", *overrides], run_mode=RunMode.MULTIRUN, with_log_configuration=False)


def test_hydra_finds_the_sweeper_and_a_search_has_a_fixed_folder(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    from mtbench.cli.hydra_app import register_resolvers

    register_resolvers()  # `python -m mtbench` registers them before Hydra reads hydra.sweep.dir
    monkeypatch.setenv("MTBENCH_OUTPUT_DIR", str(tmp_path / "out"))
    names = {p.__name__ for p in Plugins.instance().discover(Sweeper)}
    assert "OptunaSweeper" in names
    cfg = compose(["hydra.sweeper.study_name=w1", "training.fitting_weight.water_dipole=interval(1,5)"])
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.mtbench_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert Path(str(cfg.hydra.sweep.dir)) == Path(str(cfg.paths.output_dir)) / "search" / "w1"
    # the other sweepers keep the time-stamped folder
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from mtbench.spec.compose import conf_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        basic = GlobalHydra.instance().hydra.compose_config("config", [], run_mode=RunMode.MULTIRUN,
                                                            with_log_configuration=False)
    assert "/multirun/" in str(basic.hydra.sweep.dir)
    GlobalHydra.instance().clear()


def test_interval_overrides_pass_the_override_check() -> None:
    from mtbench.cli.overrides import OverrideError, check_overrides
    from mtbench.spec.compose import CONFIG_NAME, VERSION_BASE, conf_dir

    check_overrides(["-m", "hydra/sweeper=optuna", "training.fitting_weight.water_dipole=tag(log,interval(0.1,9))"],
                    config_dir=str(conf_dir()), config_name=CONFIG_NAME, version_base=VERSION_BASE)
    with pytest.raises(OverrideError, match="fitting_wieght"):
        check_overrides(["-m", "hydra/sweeper=optuna", "training.fitting_wieght.water_dipole=interval(0.1,9)"],
                        config_dir=str(conf_dir()), config_name=CONFIG_NAME, version_base=VERSION_BASE)
