"""`python -m bench.sizes` at a small size: it runs both ingests of both files and reports every
size (the figures themselves are for the bench to print, at 1M rows)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def test_sizes_runs_and_reports_every_part(tmp_path: Path) -> None:
    out = tmp_path / "sizes.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.sizes", "--rows", "5000", "--databases", "sqlite",
         "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "extrapolated to 24M rows" in done.stdout
    found = json.loads(out.read_text())
    (sample, real) = found["results"]
    assert sample["activities"] == 5000 and real["activities"] == 44077
    for result, figures in zip(found["results"], found["per_million"], strict=True):
        first, second = result["runs"]
        assert first["database"]["file"] > 0 and first["kafka"]["rows"] > 0
        assert second["kafka"]["rows"] > first["kafka"]["rows"]  # both runs kept on Kafka
        # (sampled while the fetcher runs: at 5,000 rows it can end between two samples,
        # so only the bench's 1M-row figure says how much scratch space a file takes)
        assert isinstance(first["scratch_peak"], int) and first["scratch_peak"] >= 0
        assert figures["database"] > 0 and figures["kafka_two_runs"] > figures["kafka_rows"]
