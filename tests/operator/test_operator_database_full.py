"""The operator against a real kube-apiserver and a real Kafka broker: the worker's
`database_full` event fails the IngestRequest with reason DatabaseFull and its message, and the
worker's next progress takes it back to Ingesting, its completion to Succeeded (the events
published here as the worker publishes them; the worker on a real full disk is
tests/reliability/test_database_full.py)."""

from __future__ import annotations

from typing import Any

import pytest
from operator_harness import Namespace, Publisher, ingestrequest, secret

pytestmark = [pytest.mark.kube, pytest.mark.kafka]

FULL = ("database full: the SQLite database /var/lib/molstream/molstream.db (4.9 GiB) fills its "
        "volume /var/lib/molstream (5.0 GiB, 0 B free): the 2,000,000 rows still to apply need "
        "about 364.9 MiB more; give the volume more space (on Kubernetes the chart's "
        "worker.persistence.size); the worker retries the batch until it fits, nothing applied "
        "is lost")


def test_a_full_database_fails_the_request_until_the_worker_goes_on(
    ns: Namespace, operator_with_kafka: Any, publish: Publisher
) -> None:
    ns.apply([secret("pw"), ingestrequest("full")])
    ns.wait_jobs(1)
    ingest = ns.wait_status("full", lambda s: s.get("ingestId"), "an ingest id")["ingestId"]
    ns.job_status("full-run-1", "active")
    publish("started", ingest, source="ftp://molstream-ftp:2121/activities.csv.gz")
    publish("published", ingest, rows_total=1000, rows_published=1000, rows_rejected=0,
            batches=10)
    ns.wait_phase("full", "Ingesting")

    publish("database_full", ingest, reason=FULL, needed_bytes=382_600_000)
    status = ns.wait_phase("full", "Failed")
    assert status["message"] == FULL
    failed = ns.condition("full", "Failed")
    assert (failed["status"], failed["reason"], failed["message"]) == ("True", "DatabaseFull",
                                                                      FULL)
    assert "completionTime" not in status
    assert any(e.get("reason") == "Failed" and e.get("type") == "Warning"
               for e in ns.events("full"))

    publish("progress", ingest, rows_written=600, rows_applied=600, batches_applied=6,
            batches_total=10, rows_total=1000)
    status = ns.wait_phase("full", "Ingesting")
    assert status["rowsWritten"] == 600
    assert ns.condition("full", "Failed")["status"] == "False"

    publish("completed", ingest, rows_published=1000, rows_written=1000, rows_rejected=0,
            duration_s=9.0, tables={"activity": 1000})
    ns.wait_phase("full", "Succeeded")
    assert ns.condition("full", "Complete")["status"] == "True"
    assert ns.condition("full", "Failed")["status"] == "False"
