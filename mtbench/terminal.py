"""The one owner of "is this a terminal, and how wide": every rich Console mtbench prints with comes from here.

A terminal gets rich's usual behaviour (live progress bars, tables fitted to the window). A pipe or a file
(``sbatch``, ``nohup``, ``| tee``) has no width: rich would assume 80 columns and wrap commands and URLs so that a
copied ``mlflow ui ...`` line breaks. There, lines are never wrapped and tables take the width their content needs.
"""

from __future__ import annotations

import sys
from typing import IO, Any

#: the width a Console gets on a pipe or file: wider than any table or command mtbench prints, so nothing wraps
UNWRAPPED_WIDTH = 10_000


def is_terminal(stream: IO[str] | None = None) -> bool:
    """True when ``stream`` (default: stdout) is an interactive terminal."""
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def console(*, stderr: bool = False, **kwargs: Any) -> Any:
    """A rich Console: the terminal's own width on a terminal; never wrapping on a pipe or file."""
    from rich.console import Console

    if is_terminal(sys.stderr if stderr else sys.stdout):
        return Console(stderr=stderr, **kwargs)
    return Console(stderr=stderr, width=UNWRAPPED_WIDTH, soft_wrap=True, **kwargs)
