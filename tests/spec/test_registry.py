"""One type registry: the spec's types and aliases (mtbench.spec.registry) and the model classes agree.

The spec registry owns the names; descriptor and fitting classes register under its canonical names. These tests
fail when a type is added on one side only, when an alias resolves differently on the two sides, or when an
alias is not DeePMD-kit's.
"""

from __future__ import annotations

import numpy as np
import pytest

from mtbench.spec import registry as reg
from mtbench.spec.normalize import normalize_spec

MODEL_KINDS = ("descriptor", "fitting")


def model_classes(kind: str) -> dict[str, type]:
    if kind == "descriptor":
        from mtbench.model.descriptor import DESCRIPTORS

        return DESCRIPTORS
    from mtbench.model.fitting import FITTINGS

    return FITTINGS


def class_of(kind: str, name: str) -> type:
    if kind == "descriptor":
        from mtbench.model.descriptor import descriptor_class

        return descriptor_class(name)
    from mtbench.model.fitting import fitting_class

    return fitting_class(name)


def spec_table(kind: str) -> dict[str, reg.TypeEntry]:
    return reg.DESCRIPTORS if kind == "descriptor" else reg.FITTINGS


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_every_spec_type_has_a_model_class_and_back(kind: str) -> None:
    classes = model_classes(kind)
    assert set(classes) == set(spec_table(kind))
    for name, cls in classes.items():
        assert cls.type_name == name


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_every_alias_resolves_the_same_on_both_sides(kind: str) -> None:
    for entry in spec_table(kind).values():
        for alias in (entry.name, *entry.aliases):
            assert reg.canonical_type(kind, alias) == entry.name
            assert class_of(kind, alias) is model_classes(kind)[entry.name], alias


@pytest.mark.parametrize("kind", list(reg.KINDS))
def test_no_name_means_two_types(kind: str) -> None:
    names = reg.type_names(kind)
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_unknown_type_is_refused_on_both_sides(kind: str) -> None:
    assert reg.canonical_type(kind, "se_nonsense") is None
    with pytest.raises(KeyError, match="se_nonsense"):
        class_of(kind, "se_nonsense")


def test_registering_a_type_the_spec_does_not_know_fails() -> None:
    from mtbench.model.descriptor.base import register_descriptor
    from mtbench.model.fitting.base import register_fitting

    with pytest.raises(ValueError, match="not a canonical descriptor type"):
        register_descriptor("dpa1")  # an alias: classes register under canonical names only
    with pytest.raises(ValueError, match="not a canonical fitting type"):
        register_fitting("dos")


def test_dpa1_is_se_atten_in_the_spec() -> None:
    spec = {"model": {"type_map": ["O", "H"], "descriptor": {"type": "dpa1", "sel": 30, "rcut": 4.0},
                      "fitting_net": {"neuron": [8]}},
            "loss": {"type": "ener"}, "learning_rate": {"type": "exp"},
            "training": {"numb_steps": 1, "training_data": {"systems": ["x"]}}}
    desc = normalize_spec(spec)["model"]["descriptor"]
    assert desc["type"] == "se_atten"
    assert desc["tebd_input_mode"] == reg.SE_ATTEN["tebd_input_mode"].default  # se_atten's defaults filled in


SMALL = {"se_e2_a": {"sel": [4, 8], "neuron": [2, 4], "axis_neuron": 2},
         "se_e2_r": {"sel": [4, 8], "neuron": [2, 4]},
         "se_e3": {"sel": [4, 8], "neuron": [2, 4]},
         "se_atten": {"sel": 12, "neuron": [2, 4], "axis_neuron": 2, "attn": 4, "attn_layer": 1},
         "se_atten_v2": {"sel": 12, "neuron": [2, 4], "axis_neuron": 2, "attn": 4, "attn_layer": 1}}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_descriptor_flags_match_the_spec_entry(name: str) -> None:
    """``rot_mat`` / ``mixed_types`` of the spec entry (used to validate specs) are what the built class says."""
    from mtbench.model.descriptor import build_descriptor

    entry = reg.DESCRIPTORS[name]
    spec = {"model": {"type_map": ["O", "H"], "descriptor": {"type": name, "rcut": 3.0, **SMALL[name]},
                      "fitting_net": {"neuron": [8]}},
            "loss": {"type": "ener"}, "learning_rate": {"type": "exp"},
            "training": {"numb_steps": 1, "training_data": {"systems": ["x"]}}}
    config = normalize_spec(spec)["model"]["descriptor"]
    desc = build_descriptor(config, ["O", "H"], np.random.default_rng(0))
    assert type(desc).type_name == name
    assert desc.has_rot_mat == entry.rot_mat
    assert desc.mixed_types == entry.mixed_types


def _deepmd_variants(kind: str) -> dict[str, set[str]]:
    argcheck = pytest.importorskip("deepmd.utils.argcheck", reason="deepmd-kit (the oracle) is a test extra")
    plugin = argcheck.descrpt_args_plugin if kind == "descriptor" else argcheck.fitting_args_plugin
    return {arg.name: set(arg.alias) for arg in plugin.get_all_argument()}


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_aliases_are_deepmd_kits(kind: str) -> None:
    """Every type mtbench supports is a DeePMD-kit type; all of DeePMD-kit's aliases for it are accepted, and an
    alias mtbench adds is a DeePMD-kit type name or alias (never an invented spelling)."""
    dp = _deepmd_variants(kind)
    dp_names = set(dp) | {a for aliases in dp.values() for a in aliases}
    for entry in spec_table(kind).values():
        assert entry.name in dp, entry.name
        assert dp[entry.name] <= set(entry.aliases), (entry.name, dp[entry.name] - set(entry.aliases))
        assert set(entry.aliases) <= dp_names, (entry.name, set(entry.aliases) - dp_names)
