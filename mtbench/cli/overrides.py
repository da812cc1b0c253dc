"""Check Hydra overrides before Hydra runs, so that a typo is one line and exit 2, never a silent default.

Hydra answers a misspelled group (``descritor=se_atten``) with a 7-line error and exit 1, and, followed as it
suggests (``+descritor=se_atten``), adds an unused key and trains the default descriptor. Here every override is
parsed with Hydra's own grammar and its key checked against the config groups and top-level keys that exist; then
the config is composed once (first value of each sweep) so that every other composition error is caught too.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from mtbench.errors import MtbenchError

#: Hydra launchers that come from a plugin package, and the mtbench extra that installs it.
PLUGIN_LAUNCHERS = {"joblib": "sweeps", "submitit_local": "sweeps", "submitit_slurm": "sweeps", "slurm": "sweeps"}
#: Flags after which argv holds only overrides (anything else is left to Hydra unchecked: --cfg, --help, ...).
PLAIN_FLAGS = ("-m", "--multirun")


class OverrideError(MtbenchError):
    """A command-line override that names no config group or key."""

    def __reduce__(self):  # picklable like the other user errors
        return (type(self), self.args)


def _closest(word: str, candidates: Sequence[str]) -> str | None:
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return match[0] if match else None


def _did_you_mean(word: str, candidates: Sequence[str]) -> str:
    match = _closest(word, candidates)
    return f" (did you mean '{match}'?)" if match else ""


class OverrideChecker:
    """Knows the config groups, their options and the root config's keys (read from Hydra, not listed here)."""

    def __init__(self, groups: Sequence[str], options: dict[str, list[str]], root_keys: Sequence[str]) -> None:
        self.groups = list(groups)
        self.options = options
        self.root_keys = list(root_keys)

    @classmethod
    def from_conf(cls, config_dir: str, config_name: str, version_base: str) -> "OverrideChecker":
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra

        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=config_dir, version_base=version_base):
                gh = GlobalHydra.instance()
                groups = gh.hydra.list_all_config_groups()  # type: ignore[union-attr]
                options = {g: gh.config_loader().get_group_options(g) for g in groups}
                root = compose(config_name=config_name)
                return cls(groups, options, [str(k) for k in root.keys()])
        finally:
            GlobalHydra.instance().clear()

    def group_options(self, group: str) -> str:
        return ", ".join(self.options.get(group, [])) or "(none)"

    def check(self, override: Any) -> None:
        """Raise :class:`OverrideError` for an override whose group, option or top-level key does not exist."""
        text = override.input_line or override.key_or_group
        key = override.key_or_group
        group = key.split("@", 1)[0]
        if override.is_delete():
            return
        if group in self.groups:
            self._check_option(text, group, override)
            return
        if override.package is not None or "/" in group:
            raise OverrideError(f"{text}: no config group '{group}'{_did_you_mean(group, self.groups)} "
                                f"(groups: {', '.join(g for g in self.groups if not g.startswith('hydra'))})")
        top = key.split(".", 1)[0]
        if top in self.root_keys or top == "hydra":
            return
        match = _closest(top, [g for g in self.groups if "/" not in g] + self.root_keys)
        hint = f"; did you mean '{match}'?" if match else ""  # a sentence of its own: options may follow
        if match in self.groups:
            hint += f" (options of {match}: {self.group_options(match)})"
        raise OverrideError(f"{text}: '{top}' is neither a config group nor a key of the config{hint}")

    def _check_option(self, text: str, group: str, override: Any) -> None:
        options = self.options.get(group, [])
        for value in _values(override):
            if value is None or value in options:
                continue
            if group == "hydra/launcher" and value in PLUGIN_LAUNCHERS:
                raise OverrideError(f"{text}: the '{value}' launcher is a Hydra plugin that is not installed; "
                                    f"install it with: pip install 'mtbench[{PLUGIN_LAUNCHERS[value]}]' "
                                    f"(or pip install -e '.[{PLUGIN_LAUNCHERS[value]}]' in a checkout)")
            raise OverrideError(f"{text}: group '{group}' has no option '{value}'{_did_you_mean(str(value), options)}; "
                                f"options: {self.group_options(group)}")


def _sweep_strings(override: Any) -> list[str]:
    """Every value of a sweep; an ``interval(lo, hi)`` (a search's continuous range) has only its lower end."""
    from hydra.core.override_parser.types import IntervalSweep

    sweep = override.value()
    if isinstance(sweep, IntervalSweep):
        return [str(sweep.start)]
    return [str(v) for v in override.sweep_string_iterator()]


def _values(override: Any) -> list[Any]:
    """The option names an override asks for (every value of a sweep)."""
    if override.is_sweep_override():
        return _sweep_strings(override)
    value = override.value()
    return [None if value is None else str(value)]


def first_choice(override: Any) -> str:
    """The override with a sweep replaced by its first value (what one dry composition can take)."""
    if not override.is_sweep_override():
        return override.input_line
    first = _sweep_strings(override)[0]
    prefix = {"ADD": "+", "FORCE_ADD": "++"}.get(override.type.name, "")
    return f"{prefix}{override.key_or_group}={first}"


def check_overrides(argv: Sequence[str], *, config_dir: str, config_name: str, version_base: str) -> None:
    """Raise :class:`OverrideError` (one line) for the first bad override in ``argv``; Hydra flags other than
    ``-m`` leave argv unchecked (``--cfg``, ``--help`` and the like are Hydra's business)."""
    if any(a.startswith("-") and a not in PLAIN_FLAGS for a in argv):
        return
    items = [a for a in argv if a not in PLAIN_FLAGS]
    if not items:
        return
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException, OverrideParseException

    parser = OverridesParser.create()
    overrides = []
    for item in items:
        try:
            overrides.extend(parser.parse_overrides([item]))
        except OverrideParseException as exc:
            raise OverrideError(f"{item}: {str(exc).strip().splitlines()[0]}") from None
    checker = OverrideChecker.from_conf(config_dir, config_name, version_base)
    for override in overrides:
        checker.check(override)
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir, version_base=version_base):
            compose(config_name=config_name, overrides=[first_choice(o) for o in overrides])
    except HydraException as exc:
        lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
        message = "; ".join(lines[:2]) or type(exc).__name__
        if "hydra/launcher/" in message:  # e.g. our slurm preset, whose submitit plugin is not installed
            message += " (Hydra's launcher plugins come with the sweeps extra: pip install 'mtbench[sweeps]')"
        raise OverrideError(message) from None
    finally:
        GlobalHydra.instance().clear()
