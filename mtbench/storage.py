"""Writing run files on a disk that may be full or read-only: the one owner of "the disk refused a write".

A checkpoint is built in memory and written with one plain ``write`` to ``<name>.tmp``, synced, then renamed over
``<name>``: a failure at any point leaves the previous file (and the previous latest checkpoint) as it was and no
``.tmp`` behind. HDF5 never writes to the disk itself, so a full disk is one Python ``OSError`` here instead of
h5py tracebacks from its C layer and a segmentation fault at exit.

Every such failure becomes one :class:`~mtbench.errors.StorageError` line naming the path, what was being written
and the free space on that disk; :func:`storage_error` turns a stray ``OSError`` from any other writer (lcurve
lines, ``summary.json``) into the same line.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mtbench.errors import StorageError

__all__ = ["DISK_ERRNOS", "TMP_SUFFIX", "free_space", "refused_writes", "remove_stale_tmp", "storage_error",
           "write_atomic"]

#: errors that mean "this disk or folder takes no more data": full, over quota, file size limit, read-only, denied
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})
TMP_SUFFIX = ".tmp"


def free_space(path: str | Path) -> int | None:
    """Bytes free for this user on the disk holding ``path`` (its nearest existing folder); None if unknown."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def _size(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)  # unreachable


def error_for(path: str | Path, what: str, reason: str) -> StorageError:
    """The one-line error: ``cannot write <what> <path>: <reason> (<free> free on that disk)``."""
    return StorageError(str(path), what, f"{reason} ({_size(free_space(path))} free on that disk)")


def storage_error(exc: BaseException, what: str, path: str | Path | None = None) -> StorageError | None:
    """``exc`` as a StorageError when it is a disk refusing a write (None otherwise: a bug stays a traceback)."""
    if isinstance(exc, StorageError):
        return exc
    if not isinstance(exc, OSError) or exc.errno not in DISK_ERRNOS:
        return None
    where = exc.filename if exc.filename is not None else path
    return error_for(where if where is not None else "?", what, exc.strerror or str(exc))


@contextmanager
def refused_writes(what: str, path: str | Path | None = None) -> Iterator[None]:
    """Inside: a write the disk refuses raises StorageError (one line) instead of an OSError traceback."""
    try:
        yield
    except OSError as exc:
        err = storage_error(exc, what, path)
        if err is None:
            raise
        raise err from None


def write_atomic(path: str | Path, data: bytes, what: str) -> Path:
    """Write ``data`` to ``path`` through ``path.tmp`` + fsync + rename; a refused write raises StorageError.

    The free space is checked first, so a disk too full for the file fails before anything is written.
    """
    path = Path(path)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        free = free_space(path.parent)
        if free is not None and free < len(data):
            raise error_for(path, what, f"{_size(len(data))} needed")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # a read-only folder: there is no .tmp to remove
            pass
        if exc.errno not in DISK_ERRNOS:
            raise
        raise error_for(path, what, exc.strerror or str(exc)) from None  # the file meant, not its .tmp
    return path


def remove_stale_tmp(*folders: str | Path) -> list[Path]:
    """Delete ``*.tmp`` files a killed process left in ``folders`` (not recursive); returns what was removed."""
    removed = []
    for folder in folders:
        for tmp in Path(folder).glob(f"*{TMP_SUFFIX}"):
            try:
                if tmp.is_file():
                    tmp.unlink()
                    removed.append(tmp)
            except OSError:
                pass
    return removed
