"""Where a second signal goes: real processes sending themselves real signals around :mod:`mtbench.train.signals`.

The training loop's :class:`StopRequest` is tested on real runs in ``tests/faults``; here the scopes around it are:
a command keeps exiting at once after a stop (the shutdown lasts until the process ends), a library call gets its
handlers back, and before any stop a command's scope changes nothing.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

from mtbench.train.signals import EXIT_CODES


def _run(body: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent("""
        import os, signal, time
        from mtbench.train.signals import CommandSignals, StopRequest

        def stop_on(sig):
            with StopRequest() as stop:
                os.kill(os.getpid(), sig)
                time.sleep(0.05)
            assert stop.requested, "the first signal must only ask for a stop"
    """) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("second", list(EXIT_CODES), ids=lambda s: signal.Signals(s).name)
def test_a_signal_after_a_stop_in_a_command_exits_at_once(second: int) -> None:
    """The race a real run met: the second signal came after the loop had returned, while the command wrote its
    last lines. It must still be an immediate exit with 128 + signum, not Python's handler (rc -2, a traceback)."""
    proc = _run(f"""
        with CommandSignals():
            stop_on(signal.SIGTERM)
            os.kill(os.getpid(), {int(second)})
            time.sleep(5)
            print("still running")
    """)
    assert proc.returncode == EXIT_CODES[signal.Signals(second)], proc.stderr
    assert "still running" not in proc.stdout and "Traceback" not in proc.stderr


@pytest.mark.parametrize("second", list(EXIT_CODES), ids=lambda s: signal.Signals(s).name)
def test_a_stopped_command_ends_with_the_stops_status_whatever_arrives_while_python_exits(second: int) -> None:
    """Past the scope (atexit functions, Python's and TensorFlow's teardown, where Python has handed its handlers
    back to the default action) a further signal must not turn the exit 143 into a death by that signal."""
    proc = _run(f"""
        import atexit
        atexit.register(lambda: (os.kill(os.getpid(), {int(second)}), time.sleep(0.2), print("atexit done")))
        with CommandSignals():
            stop_on(signal.SIGTERM)
            raise SystemExit(143)
    """)
    assert proc.returncode == 143, proc.stderr
    assert proc.stdout.strip() == "atexit done"


def test_a_library_call_gets_its_handlers_back_after_a_stop() -> None:
    """``mtbench.api.train`` in a notebook: stopped by Ctrl-C, a later Ctrl-C is a KeyboardInterrupt, not an exit."""
    proc = _run("""
        stop_on(signal.SIGINT)
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            print("KeyboardInterrupt")
        print(signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["KeyboardInterrupt", "True"]


def test_before_a_stop_the_command_scope_changes_nothing() -> None:
    """Ctrl-C while data load is still a KeyboardInterrupt (the run is marked KILLED on the way out); SIGTERM still
    terminates; a scope that saw no stop puts the handlers back."""
    proc = _run("""
        with CommandSignals():
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
            except KeyboardInterrupt:
                print("KeyboardInterrupt")
        print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
        with CommandSignals():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
            print("still running")
    """)
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    assert proc.stdout.split() == ["KeyboardInterrupt", "True"]
