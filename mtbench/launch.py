"""``python -m mtbench.launch --nproc N -- <overrides>``: N data-parallel workers on this machine (like torchrun).

Starts N processes of ``python -m mtbench <overrides> training.distributed=multi_worker`` (or, with
``--train input.json [mtbench.train options]``, of ``python -m mtbench.train``; the input then sets
``training.distributed: multi_worker``), each with the ``TF_CONFIG`` of a cluster of free ports on 127.0.0.1.
Their output is streamed line by line with a ``[rank]`` prefix. When a worker exits non-zero, the others get
``--grace`` seconds to stop on their own (their collectives fail within ``training.collective_timeout``), then
are terminated; the launcher exits with that worker's status and one line naming it. SIGTERM / SIGINT / SIGUSR1
are forwarded to every worker; workers that stop cleanly on one (status 143 / 130, a checkpoint written) are a
stop, not a failure: the launcher exits with that status and prints one ``resume with:`` line (the chief's,
relaunched through this launcher) instead of one per worker. Workers other than 0 get a private Hydra output
folder, so only the chief's run folder exists.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence

from mtbench.train.signals import EXIT_CODES

PROG = "mtbench.launch"


def free_ports(n: int) -> list[int]:
    """``n`` ports free on 127.0.0.1 right now (bound together, so they are distinct)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    argv = list(argv)
    rest: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.split("\n\n")[0],
                                epilog="Example: python -m mtbench.launch --nproc 2 -- training.numb_steps=100")
    p.add_argument("--nproc", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--train", metavar="INPUT", help="run python -m mtbench.train INPUT (options after --)")
    p.add_argument("--grace", type=float, default=30.0,
                   help="seconds the other workers get to stop after one failed (default 30)")
    args = p.parse_args(argv)
    if args.nproc < 1:
        p.error(f"--nproc must be >= 1, got {args.nproc}")
    return args, rest


def worker_commands(args: argparse.Namespace, rest: list[str], scratch: str) -> list[list[str]]:
    """The command line of each worker (rank order)."""
    cmds = []
    for rank in range(args.nproc):
        if args.train:
            cmd = [sys.executable, "-m", "mtbench.train", args.train, *rest]
        else:
            extra = [] if any(a.lstrip("+").startswith("training.distributed=") for a in rest) \
                else ["training.distributed=multi_worker"]
            hydra = [] if rank == 0 else [f"hydra.run.dir={scratch}/worker{rank}", "hydra.output_subdir=null"]
            cmd = [sys.executable, "-m", "mtbench", *rest, *extra, *hydra]
        cmds.append(cmd)
    return cmds


#: a worker's exit status after a clean, resumable stop on a signal (issue 10): a stop, not a failure
STOP_CODES = frozenset(EXIT_CODES.values())
RESUME_MARK = "resume with: "


def _pump(rank: int, stream, out, resume_lines: dict[int, str]) -> None:  # noqa: ANN001
    """Stream a worker's output with a ``[rank]`` prefix; its ``resume with:`` line is kept, not shown (the
    launcher prints one for all)."""
    for line in iter(stream.readline, ""):
        if RESUME_MARK in line:
            resume_lines[rank] = line.strip()
            continue
        out.write(f"[{rank}] {line}")
        out.flush()
    stream.close()


def resume_line(chief_line: str, nproc: int) -> str:
    """The launcher's one ``resume with:`` line from the chief's (``mtbench: stopped by ... resume with: python -m
    mtbench[.train] ARGS``): the same stop note, and the command relaunched through ``mtbench.launch``."""
    import shlex

    note, _, cmd = chief_line.partition(RESUME_MARK)
    note = note.split(":", 1)[1].strip() if ":" in note else note.strip()
    argv = shlex.split(cmd)
    if "-m" in argv:
        module, args = argv[argv.index("-m") + 1], argv[argv.index("-m") + 2:]
        head = [sys.executable, "-m", PROG, "--nproc", str(nproc)]
        if module == "mtbench.train" and args:
            head += ["--train", args[0]]
            args = args[1:]
        cmd = shlex.join([*head, "--", *args])
    return f"{PROG}: {note} {RESUME_MARK}{cmd}"


def main(argv: Sequence[str] | None = None) -> int:
    from mtbench.runtime import expose_package_to_children
    from mtbench.train.distributed import tf_config

    args, rest = parse_args(sys.argv[1:] if argv is None else argv)
    expose_package_to_children()
    addresses = [f"127.0.0.1:{p}" for p in free_ports(args.nproc)]
    procs: list[subprocess.Popen] = []
    pumps: list[threading.Thread] = []
    resume_lines: dict[int, str] = {}
    with tempfile.TemporaryDirectory(prefix="mtbench-launch-") as scratch:
        for rank, cmd in enumerate(worker_commands(args, rest, scratch)):
            env = {**os.environ, "TF_CONFIG": tf_config(addresses, rank), "PYTHONUNBUFFERED": "1"}
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    bufsize=1)
            procs.append(proc)
            t = threading.Thread(target=_pump, args=(rank, proc.stdout, sys.stdout, resume_lines),
                                 daemon=True)
            t.start()
            pumps.append(t)
        forward = {s: signal.signal(s, lambda signum, _f: [p.send_signal(signum) for p in procs if p.poll() is None])
                   for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
        failed: tuple[int, int] | None = None
        deadline = None
        try:
            while any(p.poll() is None for p in procs):
                if failed is None:
                    for rank, p in enumerate(procs):
                        if p.returncode not in (None, 0):
                            failed, deadline = (rank, p.returncode), time.monotonic() + args.grace
                            break
                if deadline is not None and time.monotonic() > deadline:
                    for p in procs:
                        if p.poll() is None:
                            p.kill()
                time.sleep(0.2)
        finally:
            for s, h in forward.items():
                signal.signal(s, h)
        for t in pumps:
            t.join(timeout=5)
        if failed is None:
            bad = [(r, p.returncode) for r, p in enumerate(procs) if p.returncode]
            failed = bad[0] if bad else None
    codes = [p.returncode for p in procs]
    stopped = [c for c in codes if c in STOP_CODES]
    if stopped and all(c == 0 or c in STOP_CODES for c in codes):  # a signal stopped the run: resumable
        chief = resume_lines.get(0) or next(iter(resume_lines.values()), "")
        if chief:
            print(resume_line(chief, args.nproc), file=sys.stderr, flush=True)
        return stopped[0]
    if failed is not None:
        rank, code = failed
        print(f"{PROG}: error: worker {rank} ({addresses[rank]}) exited with status {code}; the other workers were "
              f"stopped", file=sys.stderr)
        return code if 0 < code < 256 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
