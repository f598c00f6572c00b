"""The operator against a real kube-apiserver and a real Kafka broker: the fetcher's and the
worker's events (published here, as they would publish them) drive IngestRequest.status.
"""

from __future__ import annotations

import json
import secrets
import signal
import time
from typing import Any

import pytest
import yaml
from operator_harness import Namespace, Publisher, ingestrequest, secret, wait_for

pytestmark = [pytest.mark.kube, pytest.mark.kafka]

TABLES = {
    "phase": 4,
    "activity_type": 6,
    "unit": 5,
    "relation": 4,
    "organism": 12,
    "molecule": 610,
    "target": 45,
    "activity": 975,
}


def _run_to_fetching(ns: Namespace, publish: Publisher, name: str) -> str:
    ns.apply([secret("pw"), ingestrequest(name)])
    ns.wait_jobs(1)
    ingest = ns.wait_status(name, lambda s: s.get("ingestId"), "an ingest id")["ingestId"]
    ns.job_status(f"{name}-run-1", "active")
    ns.wait_phase(name, "Fetching")
    return str(ingest)


def test_events_drive_the_request_to_succeeded(
    ns: Namespace, operator_with_kafka: Any, publish: Publisher, kubectl: Any
) -> None:
    ingest = _run_to_fetching(ns, publish, "ok")
    assert ingest == ns.run_ingest_id("ok", 1)

    publish("started", ingest, source="ftp://molstream-ftp:2121/activities.csv.gz")
    status = ns.wait_status(
        "ok", lambda s: s.get("message", "").startswith("fetching"), "the started event"
    )
    assert status["message"] == "fetching ftp://molstream-ftp:2121/activities.csv.gz"

    publish("publishing", ingest, rows_total=1000, rows_published=390, rows_rejected=10)
    ns.wait_status("ok", lambda s: s.get("progress") == "rows 400/1000", "fetch progress")

    publish("published", ingest, rows_total=1000, rows_published=975, rows_rejected=25, batches=10)
    status = ns.wait_phase("ok", "Ingesting")
    assert status["progress"] == "rows written 0/975"
    ns.job_status("ok-run-1", "complete")  # the fetcher's Job ends: still Ingesting
    publish(
        "progress",
        ingest,
        rows_written=500,
        rows_applied=500,
        batches_applied=5,
        batches_total=10,
        rows_total=975,
    )
    status = ns.wait_status(
        "ok", lambda s: s.get("progress") == "rows written 500/975", "worker progress"
    )
    assert status["phase"] == "Ingesting" and status["rowsWritten"] == 500

    publish(
        "completed",
        ingest,
        rows_published=975,
        rows_written=975,
        rows_rejected=25,
        duration_s=12.5,
        tables=TABLES,
        report_path=f"/var/lib/molstream/reports/{ingest}.json",
    )
    status = ns.wait_phase("ok", "Succeeded")
    assert status["rowsTotal"] == 1000
    assert status["rowsPublished"] == 975
    assert status["rowsWritten"] == 975
    assert status["rowsRejected"] == 25
    assert status["report"] == TABLES
    assert status["reportPath"] == f"/var/lib/molstream/reports/{ingest}.json"
    assert status["message"] == "975 rows written, 25 rows rejected in 12.5s"
    assert "completionTime" in status and "startTime" in status
    complete = ns.condition("ok", "Complete")
    assert complete["status"] == "True" and complete["reason"] == "Succeeded"
    assert ns.condition("ok", "Failed")["status"] == "False"

    kubectl("wait", "--for=condition=Complete", "ir/ok", "--timeout=10s", namespace=ns.name)
    row = kubectl("get", "ir", "ok", "--no-headers", namespace=ns.name).stdout.split()
    assert row[:4] == ["ok", "Succeeded", "975", "25"]
    reasons = [e["reason"] for e in ns.events("ok")]
    for reason in ("RunStarted", "Fetching", "Ingesting", "Succeeded"):
        assert reason in reasons


def test_a_mirror_run_s_figures_reach_the_status(
    ns: Namespace, operator_with_kafka: Any, publish: Publisher
) -> None:
    ingest = _run_to_fetching(ns, publish, "mirror")
    figures = {"previous": "x", "added": 3, "changed": 2, "retired": 0, "restored": 1,
               "held_back": 9, "held_back_reason": "it would retire 9 of 10"}
    publish("completed", ingest, rows_published=10, rows_written=5, rows_rejected=0,
            duration_s=1.0, tables=TABLES, report_path="/r.csv", mirror=figures)
    status = ns.wait_phase("mirror", "Succeeded")
    assert status["mirror"] == {"added": 3, "changed": 2, "retired": 0, "restored": 1,
                                "heldBack": 9, "heldBackReason": "it would retire 9 of 10"}


def test_a_failed_event_fails_the_request_with_its_reason(
    ns: Namespace, operator_with_kafka: Any, publish: Publisher
) -> None:
    ingest = _run_to_fetching(ns, publish, "nocol")
    publish("started", ingest, source="ftp://molstream-ftp:2121/activities.csv.gz")
    publish("failed", ingest, stage="read", reason="missing required column: target_id")
    status = ns.wait_phase("nocol", "Failed")
    assert status["message"] == "read failed: missing required column: target_id"
    failed = ns.condition("nocol", "Failed")
    assert failed["status"] == "True" and failed["reason"] == "ReadFailed"
    assert any(
        e["type"] == "Warning" and "missing required column" in e["message"]
        for e in ns.events("nocol")
    )
    # the Job fails afterwards: the fetcher's reason stays
    ns.job_status("nocol-run-1", "failed")
    time.sleep(1.5)
    assert ns.status("nocol")["message"] == "read failed: missing required column: target_id"


def test_an_unreachable_source_fails_the_request(
    ns: Namespace, operator_with_kafka: Any, publish: Publisher
) -> None:
    ingest = _run_to_fetching(ns, publish, "unreachable")
    publish(
        "failed",
        ingest,
        stage="fetch",
        reason="cannot connect to molstream-ftp:2121: [Errno 111] Connection refused",
    )
    status = ns.wait_phase("unreachable", "Failed")
    assert "Connection refused" in status["message"]
    assert ns.condition("unreachable", "Failed")["reason"] == "FetchFailed"


def test_stray_stale_and_malformed_events_are_ignored(
    ns: Namespace, operator_with_kafka: Any, publish: Publisher
) -> None:
    ingest = _run_to_fetching(ns, publish, "strict")
    started = ns.status("strict")
    publish.raw(b"garbage", b"\xff not json")
    publish.raw(ingest.encode(), b'{"type":"exploded"}')
    publish("completed", f"{ns.name}.nobody.1", rows_written=1, tables={})
    publish("completed", "other-namespace.strict.1", rows_written=1, tables={})
    publish("completed", f"{ns.name}.strict.0", rows_written=1, tables={})  # another run
    publish("completed", ingest, ts=time.time() - 3600, rows_written=1, tables={})  # too old
    publish("publishing", ingest, rows_total=10, rows_published=3, rows_rejected=0)
    status = ns.wait_status("strict", lambda s: s.get("progress") == "rows 3/10", "the good event")
    assert status["phase"] == "Fetching"
    assert status["rowsWritten"] == 0
    assert status["startTime"] == started["startTime"]
    assert "report" not in status


def test_credentials_never_appear_in_status_events_or_logs(
    ns: Namespace, operator_with_kafka: Any, publish: Publisher, kafka_bootstrap: str
) -> None:
    password = f"pw-{secrets.token_hex(8)}"
    ns.apply([secret(password), ingestrequest("secret")])
    (job,) = ns.wait_jobs(1)
    ingest = ns.wait_status("secret", lambda s: s.get("ingestId"), "an ingest id")["ingestId"]
    ns.job_status("secret-run-1", "active")
    publish("started", ingest, source="ftp://molstream-ftp:2121/activities.csv.gz")
    # a careless component puts the credentials in an error message: they must stop here
    publish(
        "failed",
        ingest,
        stage="fetch",
        reason=f"530 login incorrect for ftp://molstream:{password}@molstream-ftp:2121 "
        f"(password={password})",
    )
    status = ns.wait_phase("secret", "Failed")
    assert "ftp://***@molstream-ftp:2121" in status["message"]
    # and credentials embedded in a URL are refused by the API server (the CRD's CEL rule),
    # without being repeated, and never stored
    other = f"pw-{secrets.token_hex(8)}"
    embedded = ingestrequest(
        "embedded", url=f"ftp://molstream:{other}@molstream-ftp:2121/a.csv", credentialsSecret=None
    )
    refused = ns.kubectl(
        "apply", "-f", "-", namespace=ns.name, input=yaml.safe_dump(embedded), check=False
    )
    assert refused.returncode != 0 and "must not hold a user name or password" in refused.stderr
    assert other not in refused.stderr + refused.stdout
    assert ns.admin.get_ingestrequest(ns.name, "embedded") is None
    time.sleep(1)

    everything = "\n".join(
        [
            json.dumps(ns.status("secret")),
            json.dumps(ns.events()),
            operator_with_kafka.log(),
            json.dumps(ns.jobs()),
        ]
    )
    assert password not in everything
    assert other not in everything
    env = {v["name"]: v for v in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "value" not in env["MOLSTREAM_SOURCE_PASSWORD"]


def test_restarted_operator_picks_up_where_it_left(
    ns: Namespace, start_operator: Any, kafka_bootstrap: str, publish: Publisher
) -> None:
    first = start_operator(kafka=kafka_bootstrap)
    ns.context = first.tail
    ingest = _run_to_fetching(ns, publish, "resume")
    publish("published", ingest, rows_total=100, rows_published=100, rows_rejected=0, batches=1)
    ns.wait_phase("resume", "Ingesting")
    first.stop(signal.SIGKILL)

    # while the operator is down the run finishes
    publish(
        "completed",
        ingest,
        rows_published=100,
        rows_written=100,
        rows_rejected=0,
        duration_s=3.0,
        tables={**TABLES, "activity": 100},
    )
    ns.job_status("resume-run-1", "complete")
    second = start_operator(kafka=kafka_bootstrap)
    ns.context = second.tail
    status = ns.wait_phase("resume", "Succeeded", timeout=90)  # the group waits for the dead one
    assert status["rowsWritten"] == 100
    assert [j["metadata"]["name"] for j in ns.jobs()] == ["resume-run-1"]


def test_a_rerun_ignores_the_previous_runs_events(
    ns: Namespace, operator_with_kafka: Any, publish: Publisher, kubectl: Any
) -> None:
    first = _run_to_fetching(ns, publish, "twice")
    publish("failed", first, stage="fetch", reason="timed out")
    ns.wait_phase("twice", "Failed")
    kubectl("annotate", "ir", "twice", "molstream.io/rerun=1", namespace=ns.name)
    second = ns.wait_status("twice", lambda s: s.get("run") == 2, "run 2")["ingestId"]
    assert second == ns.run_ingest_id("twice", 2)
    publish("completed", first, rows_written=5, tables={"activity": 5})  # late, run 1
    publish("started", second, source="ftp://molstream-ftp:2121/activities.csv.gz")
    status = ns.wait_phase("twice", "Fetching")
    assert "report" not in status and status["rowsWritten"] == 0


def test_metrics_and_readable_progress_during_a_run(
    ns: Namespace, start_operator: Any, kafka_bootstrap: str, publish: Publisher
) -> None:
    """The operator's /metrics, scraped during a run against the real API server and broker:
    requests by phase, the Job it created, the events it consumed. On the way, the download and
    scan events show in the progress as a person reads it."""
    op = start_operator(kafka=kafka_bootstrap, metrics=True)
    ns.context = op.tail
    wait_for(
        lambda: (op.healthy() or {}).get("events", {}).get("connected"),
        what="the event consumer connected",
        context=op.tail,
    )
    ingest = _run_to_fetching(ns, publish, "seen")
    pending = op.metrics()
    assert pending[("molstream_operator_jobs_created_total", (("kind", "job"),))] == 1
    assert pending[("molstream_operator_reconciles_total", (("kind", "ingestrequest"),))] >= 1

    publish("started", ingest, source="https://molstream-ftp/activities.csv.gz")
    publish("downloading", ingest, bytes_done=1_234_000_000, bytes_total=4_100_000_000)
    ns.wait_status(
        "seen",
        lambda s: s.get("progress") == "downloading 1.2 GB / 4.1 GB",
        "the download's progress",
    )
    publish("scanning", ingest, rows_scanned=3_000_000)
    ns.wait_status(
        "seen", lambda s: s.get("progress") == "scanning rows 3,000,000", "the scan's progress"
    )
    wait_for(
        lambda: op.metrics()[("molstream_operator_ingestrequests", (("phase", "Fetching"),))] == 1,
        what="one IngestRequest counted as Fetching",
        context=op.tail,
    )
    publish("published", ingest, rows_total=10, rows_published=10, rows_rejected=0, batches=1)
    publish("completed", ingest, rows_published=10, rows_written=10, rows_rejected=0,
            duration_s=1.0, tables=TABLES, report_path="/r.csv")
    ns.wait_phase("seen", "Succeeded")
    succeeded = ("molstream_operator_ingestrequests", (("phase", "Succeeded"),))
    done = wait_for(
        lambda: (m := op.metrics())[succeeded] == 1 and m,
        what="the IngestRequest counted as Succeeded",
        context=op.tail,
    )
    assert done[("molstream_operator_ingestrequests", (("phase", "Fetching"),))] == 0
    for kind in ("started", "downloading", "scanning", "published", "completed"):
        key = ("molstream_operator_events_consumed_total", (("outcome", "applied"), ("type", kind)))
        assert done[key] == 1, kind
    assert done[("molstream_operator_event_lag_seconds_count", ())] == 5
    assert done[("molstream_operator_reconcile_errors_total", (("kind", "ingestrequest"),))] == 0
    assert done[("process_resident_memory_bytes", ())] > 0
