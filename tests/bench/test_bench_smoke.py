"""`make bench` at a small size: it runs and produces every figure (speed is not asserted here;
timings on a shared 2-core machine are for `make bench` to print, not for tests to judge)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.ftp, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
FIGURES = ("rows", "e2e_rows_per_s", "baseline_rows_per_s", "limit_rows_per_s",
           "ratio_vs_baseline", "ratio_vs_limit", "fetcher_peak_rss_mb", "worker_peak_rss_mb",
           "fetcher_rss_growth_pct", "worker_rss_growth_pct", "download_rows_per_s",
           "read_rows_per_s", "publish_rows_per_s", "apply_rows_per_s",
           "pg_e2e_rows_per_s", "pg_e2e_2w_rows_per_s", "pg_limit_rows_per_s",
           "pg_ratio_vs_limit", "pg_worker_peak_rss_mb")


def test_bench_runs_and_reports_every_figure(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--rows", "20000", "--baseline-rows", "200",
         "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "end to end" in done.stdout and "pipeline / baseline" in done.stdout
    latest = json.loads((tmp_path / "latest.json").read_text())
    dated = [p for p in tmp_path.glob("*.json") if p.name != "latest.json"]
    assert len(dated) == 1 and json.loads(dated[0].read_text()) == latest
    assert latest["rows"] == 20000 and latest["rows_2n"] == 40000
    for key in FIGURES:
        value = latest[key]
        assert isinstance(value, int | float) and math.isfinite(value), (key, value)
        if not key.endswith("_growth_pct"):  # growth may be negative
            assert value > 0, (key, value)
    assert set(latest["targets"]) >= {"e2e_rows_per_s", "ratio_vs_limit", "pg_e2e_rows_per_s",
                                      "pg_ratio_vs_limit", "pg_lock_wait_pct"}
    # Lock waits are sampled, per worker of the 2-worker run: a figure each, zero allowed.
    assert len(latest["pg_lock_wait_s_per_worker"]) == 2
    assert all(w >= 0 for w in latest["pg_lock_wait_s_per_worker"])
    assert "PostgreSQL end to end, 2 workers" in done.stdout
    assert latest["meta"]["tsv_zstd"]["rows_per_s"] > 0 and "as TSV, zstd" in done.stdout
