"""conf/README.md documents every config group and option that conf/ ships (it drifted once)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mtbench.spec.compose import conf_dir

CONF = conf_dir()
README = (CONF / "README.md").read_text()


def _groups() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for yaml in sorted(CONF.rglob("*.yaml")):
        rel = yaml.relative_to(CONF)
        if len(rel.parts) > 1:
            groups.setdefault("/".join(rel.parts[:-1]), []).append(yaml.stem)
    return groups


def _row(group: str) -> str:
    for line in README.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 2 and cells[1].strip("`") in (f"{group}/", group):
            return line
    return ""


@pytest.mark.parametrize("group,options", sorted(_groups().items()))
def test_every_option_of_every_group_is_in_the_readme_table(group, options):
    row = _row(group)
    assert row, f"conf/README.md has no table row for the group {group}/"
    for option in options:
        assert re.search(rf"`{re.escape(option)}`", row), f"conf/README.md: {group}/ row lacks option `{option}`"


def test_training_keys_of_the_default_training_config_are_documented():
    keys = [m.group(1) for m in re.finditer(r"^(\w+):", (CONF / "training" / "default.yaml").read_text(), re.M)]
    own = [k for k in keys if k in ("sampling", "diagnostics", "restart", "init_frz_model", "max_ckpt_keep",
                                    "task_name")]
    for key in own:
        assert f"`training.{key}`" in README, f"conf/README.md does not document training.{key}"
    assert "(reserved)" not in README
