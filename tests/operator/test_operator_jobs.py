"""The operator against a real kube-apiserver: Jobs, CronJobs, phases from Job status, restarts,
reruns, refusals, printer columns. No Kafka here: the operator runs without an event consumer.
"""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import pytest
import yaml
from operator_harness import IMAGE, Namespace, ingestrequest, secret, wait_for

pytestmark = pytest.mark.kube


def _container(job: dict[str, Any]) -> dict[str, Any]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


def test_create_makes_exactly_one_job(ns: Namespace, start_operator: Any) -> None:
    op = start_operator()
    ns.context = op.tail
    ns.apply([secret("pw-one-job"), ingestrequest("one", batchSize=2000, mode="insertOnly")])

    (job,) = ns.wait_jobs(1)
    ir = ns.ir("one")
    assert job["metadata"]["name"] == "one-run-1"
    assert job["metadata"]["labels"]["molstream.io/ingestrequest"] == "one"
    assert job["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "molstream-operator"
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "molstream.io/v1alpha1",
            "kind": "IngestRequest",
            "name": "one",
            "uid": ir["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    container = _container(job)
    assert container["image"] == IMAGE
    assert container["command"] == ["molstream"]
    assert container["args"] == [  # the URL in the environment (MOLSTREAM_SOURCE_URL)
        "fetch",
        "--ingest-id",
        ns.run_ingest_id("one", 1),
        "--batch-size",
        "2000",
        "--mode",
        "insert-only",
    ]
    env = {var["name"]: var for var in container["env"]}
    assert env["MOLSTREAM_SOURCE_URL"]["value"] == "ftp://molstream-ftp:2121/activities.csv.gz"
    assert env["MOLSTREAM_ALLOW_INSECURE_CREDENTIALS"]["value"] == "true"  # both agreed
    assert env["MOLSTREAM_INGEST_ID"]["value"] == ns.run_ingest_id("one", 1)
    assert env["MOLSTREAM_SOURCE_USERNAME"]["valueFrom"]["secretKeyRef"] == {
        "name": "molstream-ftp-credentials",
        "key": "username",
        "optional": False,
    }
    assert env["MOLSTREAM_SOURCE_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "molstream-ftp-credentials",
        "key": "password",
        "optional": False,
    }
    assert "pw-one-job" not in json.dumps(job)
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "molstream-fetcher"

    status = ns.wait_phase("one", "Pending")
    assert status["jobName"] == "one-run-1"
    assert status["ingestId"] == ns.run_ingest_id("one", 1)
    assert status["run"] == 1
    assert status["observedGeneration"] == ir["metadata"]["generation"]
    assert ns.condition("one", "Ready")["status"] == "True"
    time.sleep(2)  # give a duplicate every chance to appear
    assert len(ns.jobs()) == 1


def test_job_status_drives_the_phases(ns: Namespace, start_operator: Any, kubectl: Any) -> None:
    ns.context = start_operator().tail
    ns.apply([secret("pw"), ingestrequest("phases")])
    ns.wait_jobs(1)
    ns.wait_phase("phases", "Pending")

    ns.job_status("phases-run-1", "active")
    ns.wait_phase("phases", "Fetching")
    ns.job_status("phases-run-1", "complete")
    status = ns.wait_phase("phases", "Ingesting")
    assert "the worker is applying" in status["message"]

    reasons = {event["reason"] for event in ns.events("phases")}
    assert {"RunStarted", "Fetching", "Ingesting"} <= reasons


@pytest.mark.parametrize(
    ("state", "reason", "text"),
    [
        ("failed", "BackoffLimitExceeded", "backoff limit"),
        ("deadline", "DeadlineExceeded", "longer than specified deadline"),
    ],
)
def test_failed_job_fails_the_request(
    ns: Namespace, start_operator: Any, kubectl: Any, state: str, reason: str, text: str
) -> None:
    ns.context = start_operator().tail
    ns.apply([secret("pw"), ingestrequest("broken")])
    ns.wait_jobs(1)
    ns.job_status("broken-run-1", "active")
    ns.wait_phase("broken", "Fetching")
    ns.job_status("broken-run-1", state)
    status = ns.wait_phase("broken", "Failed")
    assert status["message"].startswith("Job broken-run-1 failed: ")
    assert text in status["message"]
    assert "completionTime" in status
    failed = ns.condition("broken", "Failed")
    assert failed["status"] == "True" and failed["reason"] == reason
    warnings = [e for e in ns.events("broken") if e["type"] == "Warning"]
    assert any(e["reason"] == "Failed" and text in e["message"] for e in warnings)
    # kubectl wait works on the Failed condition too
    kubectl("wait", "--for=condition=Failed", "ir/broken", "--timeout=10s", namespace=ns.name)


def test_schedule_makes_a_cronjob_and_suspend_is_honoured(
    ns: Namespace, start_operator: Any, admin: Any
) -> None:
    ns.context = start_operator().tail
    ns.apply([secret("pw"), ingestrequest("nightly", schedule="0 3 * * *", suspend=True)])

    (cronjob,) = wait_for(ns.cronjobs, what="the CronJob", context=ns.context)
    assert cronjob["metadata"]["name"] == "nightly-cron"
    assert cronjob["spec"]["schedule"] == "0 3 * * *"
    assert cronjob["spec"]["suspend"] is True
    assert cronjob["metadata"]["ownerReferences"][0]["uid"] == ns.ir("nightly")["metadata"]["uid"]
    template = cronjob["spec"]["jobTemplate"]
    container = template["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == IMAGE
    assert "--ingest-id" in container["args"]
    status = ns.wait_status(
        "nightly", lambda s: s.get("cronJobName") == "nightly-cron", "the CronJob in status"
    )
    assert status["phase"] == "Pending"
    assert ns.condition("nightly", "Ready")["reason"] == "CronJobCreated"
    assert ns.jobs() == []  # no Job until the schedule fires

    ns.apply(ingestrequest("nightly", schedule="30 4 * * *", suspend=False))
    wait_for(
        lambda: (
            (cj := ns.cronjobs()[0]["spec"])["suspend"] is False and cj["schedule"] == "30 4 * * *"
        ),
        what="the CronJob resumed with the new schedule",
        context=ns.context,
    )

    # Play the CronJob controller: a Job from the template, named <cronjob>-<minutes>.
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "nightly-cron-29400000",
            "namespace": ns.name,
            "labels": template["metadata"]["labels"],
            "annotations": template["metadata"]["annotations"],
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": "nightly-cron",
                    "uid": cronjob["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": template["spec"],
    }
    admin.create(job)
    status = ns.wait_status(
        "nightly", lambda s: s.get("jobName") == "nightly-cron-29400000", "the scheduled run"
    )
    assert status["ingestId"] == f"{ns.name}.nightly.nightly-cron-29400000"
    assert "lastScheduleTime" in status
    ns.job_status("nightly-cron-29400000", "active")
    ns.wait_phase("nightly", "Fetching")

    # removing the schedule removes the CronJob and launches a one-off run
    ns.apply(ingestrequest("nightly"))
    wait_for(lambda: ns.cronjobs() == [], what="the CronJob deleted", context=ns.context)
    wait_for(
        lambda: any(j["metadata"]["name"] == "nightly-run-1" for j in ns.jobs()),
        what="a one-off Job",
        context=ns.context,
    )


def test_a_schedule_the_api_server_refuses_fails_the_request(
    ns: Namespace, start_operator: Any
) -> None:
    ns.context = start_operator().tail
    ns.apply([secret("pw"), ingestrequest("badcron", schedule="every night")])
    status = ns.wait_phase("badcron", "Failed")
    assert "CronJob refused by the API server" in status["message"]
    assert "spec.schedule" in status["message"]
    assert ns.condition("badcron", "Failed")["reason"] == "CronJobRejected"
    assert ns.condition("badcron", "Ready")["status"] == "False"
    ns.apply(ingestrequest("badcron", schedule="@daily"))
    wait_for(ns.cronjobs, what="the CronJob", context=ns.context)
    status = ns.wait_phase("badcron", "Pending")
    assert ns.condition("badcron", "Ready")["reason"] == "CronJobCreated"


def test_suspend_on_a_one_off_job(ns: Namespace, start_operator: Any) -> None:
    ns.context = start_operator().tail
    ns.apply([secret("pw"), ingestrequest("held", suspend=True)])
    (job,) = ns.wait_jobs(1)
    assert job["spec"]["suspend"] is True
    status = ns.wait_status(
        "held", lambda s: "suspended" in s.get("message", ""), "the suspended message"
    )
    assert status["phase"] == "Pending"
    ns.apply(ingestrequest("held", suspend=False))
    wait_for(
        lambda: ns.jobs()[0]["spec"]["suspend"] is False,
        what="the Job resumed",
        context=ns.context,
    )
    assert len(ns.jobs()) == 1


def test_restarted_operator_creates_no_second_job(ns: Namespace, start_operator: Any) -> None:
    first = start_operator()
    ns.context = first.tail
    ns.apply([secret("pw"), ingestrequest("restart")])
    ns.wait_jobs(1)
    ns.job_status("restart-run-1", "active")
    ns.wait_phase("restart", "Fetching")
    first.stop(signal.SIGKILL)  # a crash, in the middle of the run

    ns.job_status("restart-run-1", "complete")  # the run goes on while the operator is down
    second = start_operator()
    ns.context = second.tail
    ns.wait_phase("restart", "Ingesting")  # the restarted operator catches up with the Job
    time.sleep(2)
    assert [j["metadata"]["name"] for j in ns.jobs()] == ["restart-run-1"]
    assert ns.status("restart")["run"] == 1


def test_rerun_annotation_starts_a_second_job(
    ns: Namespace, start_operator: Any, kubectl: Any
) -> None:
    ns.context = start_operator().tail
    ns.apply([secret("pw"), ingestrequest("again")])
    ns.wait_jobs(1)
    ns.job_status("again-run-1", "failed")
    ns.wait_phase("again", "Failed")

    kubectl("annotate", "ir", "again", "molstream.io/rerun=first", namespace=ns.name)
    jobs = ns.wait_jobs(2)
    assert sorted(j["metadata"]["name"] for j in jobs) == ["again-run-1", "again-run-2"]
    status = ns.wait_status("again", lambda s: s.get("run") == 2, "run 2")
    assert status["phase"] == "Pending"
    assert status["ingestId"] == ns.run_ingest_id("again", 2)
    assert status["jobName"] == "again-run-2"
    assert ns.condition("again", "Failed")["status"] == "False"
    ns.job_status("again-run-2", "active")
    ns.wait_phase("again", "Fetching")

    # the same value again asks for nothing; a new one asks for run 3
    kubectl("annotate", "ir", "again", "molstream.io/rerun=first", "--overwrite", namespace=ns.name)
    kubectl(
        "annotate", "ir", "again", "molstream.io/rerun=second", "--overwrite", namespace=ns.name
    )
    ns.wait_jobs(3)
    time.sleep(1)
    assert len(ns.jobs()) == 3


@pytest.mark.parametrize(
    ("spec", "field", "needle"),
    [
        ({"url": None}, "spec.url", "Required value"),
        ({"url": "file:///etc/passwd"}, "spec.url", "should match"),
        ({"url": "s3://bucket/a.csv"}, "spec.url", "should match"),
        ({"mode": "merge"}, "spec.mode", "Unsupported value"),
        ({"batchSize": 0}, "spec.batchSize", "should be greater than or equal to 1"),
        ({"batchSize": 1_000_000}, "spec.batchSize", "should be less than or equal to 100000"),
        ({"activeDeadlineSeconds": 5}, "spec.activeDeadlineSeconds", "greater than or equal to 30"),
        ({"credentialsSecret": {}}, "spec.credentialsSecret.name", "Required value"),
    ],
)
def test_invalid_resource_is_refused_by_the_api_server(
    ns: Namespace, kubectl: Any, spec: dict[str, Any], field: str, needle: str
) -> None:
    manifest = ingestrequest("bad", **spec)
    result = kubectl(
        "apply", "-f", "-", namespace=ns.name, input=yaml.safe_dump(manifest), check=False
    )
    assert result.returncode != 0
    assert field in result.stderr and needle in result.stderr, result.stderr
    assert ns.admin.get_ingestrequest(ns.name, "bad") is None


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        # (user:password@ in spec.url: refused by the API server, test_crd_validation.py)
        ("https://evil.test/a.csv?token=hunter2", "not on the operator's allow-list"),
    ],
)
def test_operator_refuses_what_the_schema_cannot(
    ns: Namespace, start_operator: Any, url: str, needle: str
) -> None:
    op = start_operator()
    ns.context = op.tail
    ns.apply(ingestrequest("refused", url=url, credentialsSecret=None))
    status = ns.wait_phase("refused", "Failed")
    assert status["message"].startswith("invalid spec: spec.url: ")
    assert needle in status["message"]
    assert ns.condition("refused", "Ready")["status"] == "False"
    assert ns.condition("refused", "Failed")["reason"] == "InvalidSpec"
    assert any(e["reason"] == "InvalidSpec" for e in ns.events("refused"))
    assert ns.jobs() == []
    everything = json.dumps(status) + json.dumps(ns.events()) + op.log()
    assert "hunter2" not in everything

    # fixing the spec launches the run
    ns.apply([secret("pw"), ingestrequest("refused")])
    ns.wait_jobs(1)
    ns.wait_phase("refused", "Pending")
    assert ns.condition("refused", "Ready")["status"] == "True"


def test_kubectl_get_shows_the_printer_columns(
    ns: Namespace, start_operator: Any, kubectl: Any
) -> None:
    ns.context = start_operator().tail
    ns.apply([secret("pw"), ingestrequest("columns")])
    ns.wait_phase("columns", "Pending")
    output = kubectl("get", "ir", namespace=ns.name).stdout
    header, row = output.splitlines()[:2]
    assert header.split() == ["NAME", "PHASE", "WRITTEN", "REJECTED", "PROGRESS", "AGE"]
    assert row.split()[:4] == ["columns", "Pending", "0", "0"]
    wide = kubectl("get", "ingestrequests.molstream.io", "-o", "wide", namespace=ns.name).stdout
    assert wide.splitlines()[0].split() == [
        "NAME",
        "PHASE",
        "WRITTEN",
        "REJECTED",
        "PROGRESS",
        "SCHEDULE",
        "JOB",
        "AGE",
    ]
    assert "columns-run-1" in wide


def test_deleting_the_request_leaves_garbage_collection_to_owner_references(
    ns: Namespace, start_operator: Any, kubectl: Any
) -> None:
    # No garbage collector runs in a bare API server: what makes Kubernetes delete the Jobs
    # with their IngestRequest is the controller owner reference, checked here.
    ns.context = start_operator().tail
    ns.apply([secret("pw"), ingestrequest("gone")])
    (job,) = ns.wait_jobs(1)
    uid = ns.ir("gone")["metadata"]["uid"]
    (owner,) = job["metadata"]["ownerReferences"]
    assert owner["uid"] == uid and owner["controller"] and owner["blockOwnerDeletion"]
    kubectl("delete", "ir", "gone", "--wait=true", "--timeout=20s", namespace=ns.name)
    assert ns.admin.get_ingestrequest(ns.name, "gone") is None  # no finalizer holds it


def test_liveness_endpoint_reports_the_event_consumer(start_operator: Any) -> None:
    op = start_operator()
    # no Kafka, no Lease (MOLSTREAM_LEASE_NAME): neither reported
    assert op.healthy() == {"events": {"enabled": False}, "leadership": {"enabled": False}}
