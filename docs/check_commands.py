"""Run the shell commands a markdown file shows, in a scratch folder, and report each exit status.

    python docs/check_commands.py README.md --list                 # what would run, nothing runs
    python docs/check_commands.py README.md docs/SWEEPS.md --scratch /tmp/walk
    python docs/check_commands.py README.md --lang text,bash --match freeze

Commands are the ``$ ``-prefixed lines of ```` ```text ```` blocks (a shown session: the lines after a command are
its output) and, with ``--lang bash``, every non-comment line of ```` ```bash ```` blocks. A line ending in ``\\``
continues on the next. The commands of one file run in order in one ``bash`` process per command, all in the same
scratch folder, so a block may use what an earlier one wrote (``R=...`` assignments carry over). It is a manual
check of the docs on a fresh clone (slow: every command trains or loads TensorFlow), not part of the test suite;
compare what each command prints with the text by eye.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^\s*```(\S*)\s*$")


@dataclass(frozen=True)
class Command:
    """One shell command of a markdown file, where it starts (1-based line) and the language of its block."""

    source: str
    line: int
    lang: str
    text: str


def _joined(lines: Sequence[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """Join backslash continuations; yield (first line number, command)."""
    buf: list[str] = []
    start = 0
    for number, line in lines:
        if not buf:
            start = number
        if line.rstrip().endswith("\\"):
            buf.append(line.rstrip()[:-1].rstrip())
            continue
        buf.append(line.strip())
        yield start, " ".join(part.strip() for part in buf if part.strip())
        buf = []
    if buf:
        yield start, " ".join(part.strip() for part in buf if part.strip())


def extract(markdown: str, source: str = "<text>", langs: Sequence[str] = ("text",)) -> list[Command]:
    """The commands of ``markdown``: ``$ `` lines of text blocks, every non-comment line of bash blocks."""
    commands: list[Command] = []
    lang: str | None = None
    block: list[tuple[int, str]] = []
    continuing = False
    for number, line in enumerate(markdown.splitlines(), start=1):
        fence = FENCE.match(line)
        if fence:
            if lang is None:
                lang, block, continuing = fence.group(1) or "", [], False
                continue
            if lang in langs:
                commands.extend(Command(source, n, lang, t) for n, t in _joined(block) if t)
            lang = None
            continue
        if lang is None or lang not in langs:
            continue
        if lang == "text":  # a shown session: only "$ " lines and their continuations are commands
            if continuing or line.startswith("$ "):
                block.append((number, line[2:] if line.startswith("$ ") else line))
                continuing = line.rstrip().endswith("\\")
        elif line.strip() and not line.lstrip().startswith("#"):
            block.append((number, line))
    return commands


def run(commands: Sequence[Command], scratch: Path, timeout: float) -> tuple[int, int]:
    """Run each command with bash in ``scratch`` (assignments carry over); print status and time.

    Returns (commands run, commands with a non-zero exit status); assignments are not counted."""
    scratch.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    prelude: list[str] = []  # NAME=value lines seen so far, replayed before each command
    ran = failed = 0
    for cmd in commands:
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S+", cmd.text):
            prelude.append(cmd.text)
            print(f"{cmd.source}:{cmd.line}: set {cmd.text}")
            continue
        t0 = time.monotonic()
        try:
            rc = subprocess.run(["bash", "-c", "\n".join([*prelude, cmd.text])], cwd=scratch, env=env,
                                timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = 124
        ran += 1
        failed += rc != 0
        print(f"{cmd.source}:{cmd.line}: exit {rc} in {time.monotonic() - t0:.0f} s: {cmd.text}", flush=True)
    return ran, failed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="check_commands", description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--lang", default="text", help="comma-separated block languages (text, bash)")
    parser.add_argument("--match", default=None, help="only commands containing this text")
    parser.add_argument("--scratch", type=Path, default=Path.cwd(), help="folder the commands run in")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per command")
    parser.add_argument("--list", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)
    langs = tuple(x.strip() for x in args.lang.split(",") if x.strip())
    commands = [c for f in args.files for c in extract(f.read_text(encoding="utf-8"), str(f), langs)
                if args.match is None or args.match in c.text]
    if args.list:
        for c in commands:
            print(f"{c.source}:{c.line}: [{c.lang}] {c.text}")
        return 0
    ran, failed = run(commands, args.scratch, args.timeout)
    print(f"{ran} commands, {failed} with a non-zero exit status")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
