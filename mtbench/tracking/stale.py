"""Stale runs: an MLflow run left RUNNING by a process that is gone (``kill -9``, a node lost).

Found when its run folder is resumed, frozen or compared: the folder's ``tracking_run.json`` names the run, its
``run.lock`` says whether a process still trains there. Such a run is ended as KILLED with the tag
``mtbench.stale`` saying why; a run some process still holds, or whose holder is on another host, is left alone.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
from typing import Any

from mtbench.rundir import RunDir
from mtbench.tracking.names import STALE_TAG
from mtbench.tracking.store import Store, StoreError

log = logging.getLogger("mtbench.tracking")



def mark_stale(run: RunDir | None, by: str, *, holder: dict[str, Any] | None = None, check_lock: bool = True) -> bool:
    """End the folder's MLflow run as KILLED if it is still RUNNING and no live process holds the folder.

    ``by`` names who found it (``resume``, ``freeze``...); ``holder`` is the dead process's lock, when known.
    ``check_lock=False``: the caller holds the folder's lock itself. Never raises; True when a run was marked.
    """
    if run is None:
        return False
    if check_lock:  # a process that ended (or was stopped) removed its lock: only a dead holder's lock is left
        holder = run.lock_holder()
        if holder is None or run.in_use() is not False:  # no lock, a live process, or one on another host
            return False
    stored = run.read_tracking_run()
    if stored is None:
        return False
    try:
        store = Store(str(stored["tracking_uri"]), run.path, retries=2, probe_timeout_s=2.0)
        info = store.get_run(str(stored["run_id"])).info
        if info.status != "RUNNING":
            return False
        who = (f"pid {holder.get('pid')} on {holder.get('host')} (started {holder.get('started')})"
               if holder else "its process")
        note = (f"{who} ended without closing the run (killed?); marked KILLED by {by} "
                f"(pid {os.getpid()} on {socket.gethostname()}, {datetime.datetime.now():%Y-%m-%d %H:%M:%S})")
        store.set_tags(info.run_id, {STALE_TAG: note})
        store.set_terminated(info.run_id, "KILLED")
    except (StoreError, KeyError, AttributeError, TypeError) as exc:
        log.warning("could not check the MLflow run of %s for a stale RUNNING state: %s", run.path, exc)
        return False
    log.warning("MLflow run %s of %s was left RUNNING by a process that is gone: marked KILLED (%s)",
                info.run_id, run.path, STALE_TAG)
    return True
