"""Metrics of the real processes: a worker and a fetcher (`python -m molstream ...`) serve
/metrics during a real ingest through the real broker, Redis and HTTP server, and what they
count agrees with what the ingest reports (the fetcher's result, the completed event, the
rejected topic)."""

from __future__ import annotations

import json
import re
import signal
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pytest
from harness import Proc, fetch_args, service_env, wait_for
from molstream.config import Settings, Topics
from molstream.contract import reason_class
from molstream.publish import ensure_topics
from molstream.sample import generate
from prometheus_client.parser import text_string_to_metric_families
from waits import topic_json

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(600)]

ROWS = 30_000
INGEST = "metrics-1"
PORT_LINE = re.compile(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics: (series name, sorted labels) → value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:  # noqa: S310
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def by_label(samples: dict, name: str, label: str) -> dict[str, float]:
    return {dict(labels)[label]: v for (n, labels), v in samples.items() if n == name}


def metrics_port(proc: Proc) -> int:
    found = wait_for(lambda: PORT_LINE.search(proc.stderr), timeout_s=120,
                     what=f"the {proc.name} logging its metrics port", watch=[proc])
    return int(found[1])


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A ChEMBL-shaped file, then a row of too few fields and a repeated activity."""
    path = tmp_path / "src" / "activities.csv"
    path.parent.mkdir()
    generate(path, ROWS, seed=3)
    lines = path.read_text().splitlines(keepends=True)
    with path.open("a") as f:
        f.write("1,2,3\n")
        f.write(lines[1])  # the first data row again: a duplicate activity_id
    return path


def test_worker_and_fetcher_metrics_agree_with_the_report(
        source, tmp_path, http_server, kafka_bootstrap, redis_url, procs):
    prefix = f"met{uuid.uuid4().hex[:10]}"
    s = Settings(kafka_bootstrap=kafka_bootstrap, topics=Topics(prefix=prefix),
                 database_url=f"sqlite:///{tmp_path / 'molstream.sqlite'}", redis_url=redis_url,
                 reports_dir=tmp_path / "reports", work_dir=tmp_path / "work",
                 worker_group=f"{prefix}-worker", batch_size=2_000, retries=3)
    ensure_topics(s.kafka_bootstrap, s.topics)
    # The download is cut once, 1 MB in: the fetcher resumes it (a retry to count).
    server = http_server(source.parent, cut_after_bytes=1_000_000)
    env = service_env(s, MOLSTREAM_METRICS_HOST="127.0.0.1")
    # No --until-complete: a worker runs on after an ingest, to be scraped.
    worker = procs("worker", ["worker", "--no-progress", "--metrics-port", "0"], env)
    worker_port = metrics_port(worker)
    fetcher = procs("fetcher", fetch_args(server.url(source.name), INGEST, "--metrics-port", "0",
                                          "--metrics-linger", "600"), env)
    fetcher_port = metrics_port(fetcher)

    # The fetcher, scraped until it says its figures are final (that scrape ends its linger).
    def final_fetcher_figures():
        samples = scrape(fetcher_port)
        return samples if samples[("molstream_fetcher_finished", ())] == 1 else None

    fetched = wait_for(final_fetcher_figures, timeout_s=300, poll_s=0.2,
                       what="the fetcher's final figures", watch=[fetcher, worker])
    fetcher.expect_success(120)
    result = json.loads(fetcher.stdout)
    assert fetched[("molstream_fetcher_rows_published_total", ())] == result["rows_published"]
    assert result["rows_published"] == ROWS and result["rows_rejected"] == 2
    assert fetched[("molstream_fetcher_rows_read_total", ())] == result["rows_total"]
    assert fetched[("molstream_fetcher_downloaded_bytes_total", ())] == source.stat().st_size
    assert fetched[("molstream_fetcher_download_retries_total", ())] == 1
    assert fetched[("molstream_fetcher_publish_seconds_count", ())] == result["batches"]
    assert set(by_label(fetched, "molstream_fetcher_stage_seconds", "stage")) == {
        "download", "read", "publish"}
    rejected = [r for r in topic_json(s.kafka_bootstrap, s.topics.rejected)
                if r["ingest_id"] == INGEST]
    assert by_label(fetched, "molstream_fetcher_rows_rejected_total", "reason") == dict(
        Counter(reason_class(r["reason"]) for r in rejected)) == {
        "field_count": 1, "duplicate": 1}

    # The worker, once it has announced the ingest.
    def completed():
        events = topic_json(s.kafka_bootstrap, s.topics.events)
        return next((e for e in events if e["type"] == "completed"
                     and e["ingest_id"] == INGEST), None)

    done = wait_for(completed, timeout_s=300, poll_s=0.2, what="the completed event",
                    watch=[worker])
    applied = wait_for(lambda: (m := scrape(worker_port))
                       and m.get(("molstream_worker_ingests_total", (("outcome", "completed"),)))
                       and m, timeout_s=60, what="the worker counting the ingest completed")
    written = by_label(applied, "molstream_worker_rows_written_total", "table")
    assert written == {t: float(n) for t, n in done["tables"].items()}
    assert applied[("molstream_worker_rows_applied_total", ())] == done["rows_published"]
    assert applied[("molstream_worker_batches_applied_total", ())] == result["batches"]
    assert applied[("molstream_worker_batch_apply_seconds_count", ())] >= 1
    assert applied[("molstream_worker_commit_seconds_count", ())] >= 1
    assert applied[("molstream_worker_batches_redelivered_total", ())] == 0
    assert by_label(applied, "molstream_worker_consumer_lag", "partition") == {"0": 0}
    lookups = sum(v for (n, _), v in applied.items()
                  if n == "molstream_worker_cache_lookups_total")
    assert lookups > 0
    assert applied[("process_resident_memory_bytes", ())] > 0
    assert worker.kill(signal.SIGTERM) == 0
