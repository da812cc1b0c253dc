"""Store's read methods against a real SQLite store, and the same retry rule as its writes."""

from __future__ import annotations

import time
from typing import Any

import pytest

from mtbench.tracking.store import Store, StoreError, default_tracking_uri


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    out = tmp_path_factory.mktemp("store")
    s = Store(default_tracking_uri(out), out, backoff_s=0.001)
    s.connect()  # once: creating an SQLite store's schema takes seconds
    return s


def test_runs_children_and_histories_are_read_back(store: Store) -> None:
    eid = store.experiment_id("reads")  # its own experiment: the other tests add runs elsewhere
    parent = store.create_run(eid, "parent", {"kind": "sweep"})
    kids = [store.create_run(eid, f"job{i}", {"mlflow.parentRunId": parent}) for i in range(3)]
    other = store.create_run(eid, "alone", {})
    ts = int(time.time() * 1000)
    store.log_metrics(kids[0], [("val/w/rmse", 3.0, 0, ts), ("val/w/rmse", 1.0, 5, ts)])

    run = store.get_run(parent)
    assert run.info.run_id == parent and run.data.tags["kind"] == "sweep"
    assert sorted(r.info.run_id for r in store.children(parent)) == sorted(kids)
    assert store.children(other) == []
    assert [(p.step, p.value) for p in sorted(store.metric_history(kids[0], "val/w/rmse"),
                                              key=lambda p: p.step)] == [(0, 3.0), (5, 1.0)]
    assert store.metric_history(kids[1], "val/w/rmse") == []
    assert store.experiment_by_name("reads").experiment_id == eid
    assert store.experiment_by_name("no-such-experiment") is None  # and none is created
    assert store.experiment_by_name("no-such-experiment") is None
    found = store.search_runs([eid], "tags.kind = 'sweep'")
    assert [r.info.run_id for r in found] == [parent]
    newest = store.search_runs([eid], order_by=["attributes.start_time DESC"], max_results=1)
    assert len(newest) == 1 and len(store.search_runs([eid])) == 5


class _Flaky:
    """A client whose calls fail with SQLite's lock error ``fails`` times, then pass through."""

    def __init__(self, client: Any, fails: int, error: str = "database is locked") -> None:
        self._client, self.fails, self.error, self.calls = client, fails, error, 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls <= self.fails:
                raise RuntimeError(f"(sqlite3.OperationalError) {self.error}")
            return real(*args, **kwargs)

        return call


@pytest.mark.parametrize("read", ["get_run", "children", "metric_history", "experiment_by_name",
                                  "search_runs"])
def test_reads_retry_lock_errors_and_fail_as_store_errors(store: Store, read: str) -> None:
    eid = store.experiment_id("flaky")
    run = store.create_run(eid, "r", {})
    calls = {"get_run": lambda: store.get_run(run), "children": lambda: store.children(run),
             "metric_history": lambda: store.metric_history(run, "x"),
             "experiment_by_name": lambda: store.experiment_by_name("flaky"),
             "search_runs": lambda: store.search_runs([eid])}
    real = store._client
    try:
        store._client = flaky = _Flaky(real, fails=2)
        calls[read]()  # two lock errors, then the answer
        assert flaky.calls >= 3
        store._client = flaky = _Flaky(real, fails=1, error="disk I/O error")
        with pytest.raises(StoreError, match=r"on sqlite:///.* failed: RuntimeError: .*disk I/O error"):
            calls[read]()
        assert flaky.calls == 1  # not retried
    finally:
        store._client = real
