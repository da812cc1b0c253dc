"""mtbench.runtime's logging: mtbench's lines go to the root logger's log files (Hydra's job log) and follow them
from job to job when one process runs several (Hydra's basic launcher in a multirun)."""

from __future__ import annotations

import logging
from pathlib import Path

from mtbench.runtime import configure_logging


def test_log_files_follow_the_root_logger(tmp_path: Path) -> None:
    root, ours = logging.getLogger(), logging.getLogger("mtbench")
    saved_root, saved_ours = list(root.handlers), list(ours.handlers)
    first, second = logging.FileHandler(tmp_path / "job0.log"), logging.FileHandler(tmp_path / "job1.log")
    try:
        root.addHandler(first)
        configure_logging()
        logging.getLogger("mtbench.some.module").warning("said in job 0")
        root.removeHandler(first)
        first.close()  # as Hydra does when the next job configures logging
        root.addHandler(second)
        configure_logging()
        configure_logging()  # idempotent: still one line per message
        logging.getLogger("mtbench.some.module").warning("said in job 1")
    finally:
        for handler in (first, second):
            root.removeHandler(handler)
            handler.close()
        root.handlers[:] = saved_root
        ours.handlers[:] = saved_ours
    assert (tmp_path / "job0.log").read_text().splitlines() == ["said in job 0"]
    assert (tmp_path / "job1.log").read_text().splitlines() == ["said in job 1"]
