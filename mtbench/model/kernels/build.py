"""Compile mtbench's C++ kernels against the installed TensorFlow, once per machine kind, and load them.

Why on first use and not at ``pip install``: pip builds in an isolated environment without the user's TensorFlow,
and on a cluster the login node that installs is often another CPU than the compute node that trains. So the
library is built where it runs, for that CPU (``-march=native``), and cached under a key of everything it depends
on (source, TensorFlow version and flags, compiler, CPU flags): ``$MTBENCH_KERNELS_DIR``, else
``~/.cache/mtbench/kernels``. Concurrent processes (xdist workers, ranks of one job) wait on a file lock; one builds.
Any failure (no compiler, no headers, a read-only cache) returns the reason, and callers fall back to TensorFlow's
own kernels.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

#: the C++ sources, built into one library
SOURCES = tuple(sorted(Path(__file__).parent.glob("*.cc")))
# Eigen's AVX512-FP16 packets do not compile with g++ 12; float16 is not used here, so that extension is left off.
_ARCH_FLAGS = (["-march=native", "-mno-avx512fp16"], ["-march=native"], [])
BUILD_TIMEOUT_S = 600
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Built:
    """A loaded library (``module``) or why there is none (``reason``)."""

    module: object | None
    reason: str = ""
    path: Path | None = None


def cache_dir() -> Path:
    env = os.environ.get("MTBENCH_KERNELS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mtbench" / "kernels"


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def compiler() -> str | None:
    """The C++ compiler to build with: ``$CXX``, else g++, else c++ (None: there is none)."""
    return shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")


def _tf_flags() -> tuple[list[str], list[str], str]:
    import tensorflow as tf

    return list(tf.sysconfig.get_compile_flags()), list(tf.sysconfig.get_link_flags()), tf.__version__


def library_key(cxx: str) -> str:
    """What the binary depends on; a change of any part builds a new one."""
    compile_flags, link_flags, version = _tf_flags()
    parts = [*(src.read_bytes().decode() for src in SOURCES), version, " ".join(compile_flags + link_flags), cxx, _cpu_flags(),
             platform.machine()]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _run(cmd: list[str]) -> str:
    """Run one compiler command; '' on success, else its first error line."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{cmd[0]} failed to run: {exc}"
    if proc.returncode == 0:
        return ""
    errors = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    return (errors or proc.stderr.splitlines() or ["no output"])[0].strip() or "no output"


def _compile(cxx: str, out: Path) -> str:
    """Build ``out``: each source compiled on its own core, then linked; '' on success, else the first error."""
    compile_flags, link_flags, _ = _tf_flags()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    last = ""
    for arch in _ARCH_FLAGS:
        with tempfile.TemporaryDirectory(dir=out.parent, prefix="build-") as tmp:
            objects = [Path(tmp) / f"{src.stem}.o" for src in SOURCES]
            commands = [[cxx, "-c", "-fPIC", "-O3", "-w", *arch, str(src), "-o", str(obj), *compile_flags]
                        for src, obj in zip(SOURCES, objects)]
            with ThreadPoolExecutor(max_workers=max(1, min(cores, len(commands)))) as pool:
                errors = [e for e in pool.map(_run, commands) if e]
            if not errors:
                errors = [e for e in [_run([cxx, "-shared", *map(str, objects), "-o", str(out), *link_flags])] if e]
            if not errors:
                return ""
            last = errors[0]
        if "failed to run" in last:
            return last
    return f"{cxx} failed: {last[:300]}"


def build_and_load() -> Built:
    """The compiled kernels, built now if this machine kind has none in the cache."""
    import tensorflow as tf

    cxx = compiler()
    if cxx is None:
        return Built(None, "no C++ compiler (g++, or $CXX) on PATH")
    if not (Path(tf.sysconfig.get_include()) / "tensorflow" / "core" / "framework" / "op_kernel.h").exists():
        return Built(None, "TensorFlow's C++ headers are not installed")
    try:
        key = library_key(cxx)
        base = cache_dir()
        base.mkdir(parents=True, exist_ok=True)
        lib = base / f"mtbench_kernels-{key}.so"
        with open(base / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not lib.exists():
                _log.info("compiling mtbench's CPU kernels for this machine (once, about a minute) into %s",
                          base)
                fd, tmp = tempfile.mkstemp(dir=base, suffix=".so.tmp")
                os.close(fd)
                try:
                    error = _compile(cxx, Path(tmp))
                    if error:
                        return Built(None, error)
                    os.replace(tmp, lib)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
    except OSError as exc:
        return Built(None, f"cannot write the kernel cache {cache_dir()} ({exc.strerror}); set MTBENCH_KERNELS_DIR")
    try:
        return Built(tf.load_op_library(str(lib)), path=lib)
    except Exception as exc:  # noqa: BLE001  (a stale or foreign binary: any load error means "use TensorFlow's")
        return Built(None, f"cannot load {lib}: {str(exc).splitlines()[0][:300]}")
