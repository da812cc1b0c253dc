"""What the ``python -m mtbench.<command>`` commands share: their parser's program name and how their body runs.

A command's name (``mtbench.freeze``) is written once: ``python -m mtbench.freeze`` in its usage line,
``mtbench.freeze: error: ...`` (exit 2) when the user got something wrong.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def command_parser(command: str, **kw: Any) -> argparse.ArgumentParser:
    """The argument parser of ``python -m <command>`` (``kw``: :class:`argparse.ArgumentParser`'s)."""
    return argparse.ArgumentParser(prog=f"python -m {command}", **kw)


def run_command(command: str, body: Callable[[], T], *, tensorflow: bool = False) -> T:
    """Run a command's ``body`` with mtbench's log lines set up (and TensorFlow's threads, ``tensorflow``); a user
    mistake (:class:`~mtbench.errors.MtbenchError`) becomes one line ``<command>: error: ...`` and its exit code."""
    from mtbench.errors import exit_on_user_error

    def run() -> T:
        from mtbench.runtime import configure_logging, configure_runtime

        if tensorflow:
            configure_runtime()
        configure_logging()
        return body()

    return exit_on_user_error(run, prog=command)
