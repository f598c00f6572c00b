"""The bench's own housekeeping (pure logic, no services): what a killed run left is removed
and nothing else, and the row-order table names the PostgreSQL worker count it ran with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench import results
from bench.run import KEPT, _prune_runs


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid  # reaped: no process has it (until the kernel hands it out again)


def test_prune_removes_only_the_work_of_benches_that_are_gone(tmp_path: Path) -> None:
    dead = tmp_path / f"20261206-010000-{_dead_pid()}"
    alive = tmp_path / f"20261206-010000-{os.getpid()}"
    kept = tmp_path / f"20261206-020000-{_dead_pid()}"
    odd = tmp_path / "not-a-bench-999999999999999999999"
    for d in (dead, alive, kept, odd):
        (d / "bench1234").mkdir(parents=True)
    (kept / KEPT).touch()

    assert _prune_runs(tmp_path) == [dead]
    assert not dead.exists() and alive.exists() and kept.exists() and odd.exists()
    assert _prune_runs(tmp_path / "absent") == []


def _run(seconds: float) -> dict:
    return {"seconds": seconds, "apply_seconds": seconds - 1, "fetcher_peak_rss_mb": 300.0,
            "worker_peak_rss_mb": 200.0, "loop_warnings": 0, "rebalances": 1,
            "member_timeouts": 0}


def _orders(meta: dict) -> str:
    ordered = {"this": {db: {"id": [_run(10.0)], "target": [_run(12.0)],
                             "shuffled": [_run(20.0)]} for db in ("sqlite", "postgres")}}
    f = results.order_figures(ordered, 1000, meta, limits={"postgres": 200.0})
    return results.order_table(f)


def test_the_order_table_says_how_many_postgresql_workers_ran() -> None:
    full = _orders({"pg_order_workers": 2})
    assert "PostgreSQL, 2 workers" in full
    assert "(the slower; 2 workers)" in full
    assert "members dropped for silence 0" in full
    # results written before the key existed were made with one worker
    assert "PostgreSQL, 1 worker " in _orders({})
