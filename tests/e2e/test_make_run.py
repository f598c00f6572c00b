"""`make run`, the first thing the README tells users to do, on a real kind cluster: image
built from the Dockerfile and loaded, `helm upgrade --install --wait`, `helm test --logs`, the
sample IngestRequest followed to its report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SAMPLE = "ingestrequest-sample"  # k8s/ingestrequest.yaml


def test_make_run_ends_with_the_sample_ingest_succeeded_and_its_report(cluster, ran):
    out = ran.stdout + ran.stderr
    assert ran.returncode == 0, out[-6000:]
    # helm test passed, its logs shown (helm/helm#9098: a hook-succeeded Pod has no logs)
    for check in ("ok   kafka:", "ok   redis:", "ok   ftp: activities.csv.gz", "ok   kafka-ui:"):
        assert check in out, out[-6000:]
    assert "Succeeded" in out and "Rows written per table:" in out
    report = {line.split()[0]: int(line.split()[1]) for line in
              out.split("Rows written per table:", 1)[1].splitlines()[1:9]}
    assert report["activity"] == 100_000  # LOCAL_ROWS in .env: the demo FTP server's sample
    assert set(report) == {"activity", "activity_type", "molecule", "organism", "phase",
                           "relation", "target", "unit"}

    # What the README documents: kubectl wait on the Complete condition, kubectl get ir columns
    cluster.k("wait", "--for=condition=Complete", f"ir/{SAMPLE}", "--timeout=60s")
    table = cluster.k("get", "ir", SAMPLE).stdout.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "WRITTEN", "REJECTED", "PROGRESS", "AGE"], table
    assert table[1].split()[:4] == [SAMPLE, "Succeeded", "100000", "0"], table
    status = cluster.ir_status(SAMPLE)
    assert status["phase"] == "Succeeded"
    complete = [c for c in status["conditions"] if c["type"] == "Complete"]
    assert complete and complete[0]["status"] == "True"


def test_the_rerun_annotation_starts_run_2_with_a_new_job(cluster, ran):
    assert ran.returncode == 0
    first = cluster.ir_status(SAMPLE)
    cluster.k("annotate", "ir", SAMPLE, "molstream.io/rerun=e2e-2", "--overwrite")
    second = cluster.wait_for(
        lambda: (s := cluster.ir_status(SAMPLE)).get("run", 0) > first.get("run", 1) and s,
        "run 2 of the sample")
    assert second["jobName"] != first["jobName"]
    cluster.k("get", "job", second["jobName"])  # a new Job, really created
    cluster.wait_for(lambda: cluster.ir_status(SAMPLE).get("phase") == "Succeeded",
                     "run 2 to succeed")
    jobs = cluster.k("get", "jobs", "-o", "name").stdout.split()
    assert f"job.batch/{first['jobName']}" in jobs and f"job.batch/{second['jobName']}" in jobs


def test_an_invalid_ingestrequest_is_refused_by_the_api_server(cluster, ran):
    refused = cluster.k("apply", "-f", "-", check=False, stdin="""
apiVersion: molstream.io/v1alpha1
kind: IngestRequest
metadata: {name: from-a-file}
spec: {url: "file:///etc/passwd"}
""")
    assert refused.returncode != 0
    assert "spec.url" in refused.stderr, refused.stderr
    assert cluster.k("get", "ir", "from-a-file", check=False).returncode != 0


def test_deleting_the_ingestrequest_removes_its_jobs(cluster, ran):
    """Garbage collection by the real kube-controller-manager (owner references)."""
    assert ran.returncode == 0
    assert cluster.k("get", "jobs", "-o", "name").stdout.split()
    cluster.k("delete", "ir", SAMPLE, "--wait=true", "--timeout=300s")
    cluster.wait_for(lambda: not cluster.k("get", "jobs", "-o", "name").stdout.split(),
          "the sample's Jobs to be garbage-collected")


def test_the_sample_created_again_under_its_name_runs_to_the_end(cluster, ran):
    """A new object with the old name starts again at run 1: its ingest ids must not be the
    ones the worker completed for the deleted object (found here: it stayed Ingesting)."""
    assert ran.returncode == 0
    cluster.k("delete", "ir", SAMPLE, "--ignore-not-found", "--wait=true", "--timeout=300s")
    cluster.k("apply", "-f", str(REPO / "k8s/ingestrequest.yaml"))
    cluster.k("wait", "--for=condition=Complete", f"ir/{SAMPLE}", "--timeout=900s")
    status = cluster.ir_status(SAMPLE)
    assert (status["run"], status["rowsPublished"], status["rowsRejected"]) == (1, 100_000, 0)


WRONG_PASSWORD = """
apiVersion: v1
kind: Secret
metadata:
  name: wrong-ftp-credentials
  labels: {molstream.io/source-credentials: "true"}
type: Opaque
stringData: {username: molstream, password: not-the-password}
---
apiVersion: molstream.io/v1alpha1
kind: IngestRequest
metadata: {name: wrong-password}
spec:
  url: ftp://molstream-ftp:2121/activities.csv.gz
  credentialsSecret: {name: wrong-ftp-credentials}
  allowInsecureCredentials: true
  backoffLimit: 3
"""


def test_a_wrong_password_ends_failed_with_the_reason_without_retries(cluster, ran):
    assert ran.returncode == 0
    cluster.k("apply", "-f", "-", stdin=WRONG_PASSWORD)
    try:
        # A refused login is permanent: the fetcher exits 3 and the Job's podFailurePolicy
        # fails the Job at once, whatever its backoffLimit.
        job_name = cluster.wait_for(
            lambda: cluster.ir_status("wrong-password").get("jobName"), "the wrong-password Job")
        cluster.k("wait", "--for=condition=Failed", f"job/{job_name}", "--timeout=600s")
        cluster.k("wait", "--for=condition=Failed", "ir/wrong-password", "--timeout=600s")
        status = cluster.ir_status("wrong-password")
        assert status["jobName"] == job_name
        assert status["phase"] == "Failed"
        failed = next(c for c in status["conditions"] if c["type"] == "Failed")
        assert failed["status"] == "True" and failed["reason"] in (
            "FetchFailed", "PermanentError"), failed
        assert "530" in failed["message"] or "login" in failed["message"].lower(), failed
        assert "not-the-password" not in json.dumps(status)
        job = cluster.json("job", status["jobName"])
        assert job["status"].get("failed", 0) == 1, job["status"]  # no retry
        reasons = [c.get("reason") for c in job["status"].get("conditions", [])]
        assert "PodFailurePolicy" in reasons, job["status"]
    finally:
        cluster.k("delete", "-f", "-", "--wait=false", stdin=WRONG_PASSWORD, check=False)
