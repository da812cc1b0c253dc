"""User-facing errors.

A user mistake (a bad key, a missing file, an impossible setting) is raised as an
:class:`MtbenchError`; entry points print it as one line, naming the key or file at
fault, and exit with status 2 instead of showing a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class MtbenchError(Exception):
    """A mistake in the user's input; its message is one line that names the culprit."""

    exit_code = 2


class SpecError(MtbenchError):
    """A bad key or value in the training spec (input.json / composed Hydra config)."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")

    def __reduce__(self):  # picklable, so launchers (joblib, submitit) can send it back
        return (type(self), (self.key, self.message))


class DataError(MtbenchError):
    """A missing or malformed data file or directory."""

    def __init__(self, path: str, message: str) -> None:
        self.path = str(path)
        self.message = message
        super().__init__(f"{path}: {message}")

    def __reduce__(self):
        return (type(self), (self.path, self.message))


class StorageError(MtbenchError):
    """The disk refused a write (full, over quota, file size limit, read-only): not the user's input, so exit 1;
    still one line, naming the path, what was being written and the free space (:mod:`mtbench.storage`)."""

    exit_code = 1

    def __init__(self, path: str, what: str, reason: str) -> None:
        self.path, self.what, self.reason = str(path), what, reason
        super().__init__(f"cannot write {what} {path}: {reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.what, self.reason))


def exit_on_user_error(fn: Callable[[], T], prog: str = "mtbench", *, reraise: bool = False) -> T:
    """Run ``fn``; turn an :class:`MtbenchError` into one line on stderr and its exit code (2; 1 for a refused
    write).

    ``reraise``: print the line, then raise the error itself (a sweep job: the launcher records the failure and
    the other jobs go on).
    """
    try:
        return fn()
    except MtbenchError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        if reraise:
            raise
        raise SystemExit(exc.exit_code) from None
