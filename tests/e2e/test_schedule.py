"""A scheduled IngestRequest on a real cluster: the operator makes a CronJob, the real CronJob
controller starts its Job on the minute, and the run's result reaches the IngestRequest."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e

NAME = "every-minute"
SCHEDULED = f"""
apiVersion: molstream.io/v1alpha1
kind: IngestRequest
metadata: {{name: {NAME}}}
spec:
  url: ftp://molstream-ftp:2121/activities.csv.gz
  credentialsSecret: {{name: molstream-ftp-credentials}}
  allowInsecureCredentials: true
  schedule: "* * * * *"
"""


def test_a_scheduled_ingestrequest_s_cronjob_runs_and_reports(cluster, ran):
    assert ran.returncode == 0  # the release, the FTP server's sample and its Secret
    cluster.k("apply", "-f", "-", stdin=SCHEDULED)
    try:
        cronjobs = cluster.wait_for(
            lambda: cluster.json("cronjobs", "-l", f"molstream.io/ingestrequest={NAME}")["items"],
            "the operator's CronJob")
        assert [c["spec"]["schedule"] for c in cronjobs] == ["* * * * *"]
        cronjob = cronjobs[0]["metadata"]["name"]

        # The CronJob controller creates the Job (at most a minute away); the operator follows
        # it. Then suspend the schedule, so that no later run takes the status over before this
        # one's result arrives.
        job_name = cluster.wait_for(lambda: cluster.ir_status(NAME).get("jobName"),
                                    "the first scheduled run's Job")
        cluster.k("patch", "ir", NAME, "--type=merge", "-p", '{"spec": {"suspend": true}}')
        job = cluster.json("job", job_name)
        assert [(o["kind"], o["name"]) for o in job["metadata"]["ownerReferences"]] == [
            ("CronJob", cronjob)]
        status = cluster.wait_for(
            lambda: (s := cluster.ir_status(NAME)).get("phase") in ("Succeeded", "Failed") and s,
            "the scheduled run's end")
        assert (status["phase"], status["jobName"]) == ("Succeeded", job_name), status
        # The whole file went through. Rows written count rows inserted or changed, which
        # depends on what earlier tests left in the database.
        assert status["lastScheduleTime"] and (status["rowsPublished"], status["rowsRejected"]) == (
            100_000, 0), status
        assert set(status["report"]) == {"activity", "activity_type", "molecule", "organism",
                                         "phase", "relation", "target", "unit"}, status
    finally:
        # Deleting the IngestRequest takes its CronJob and Jobs with it: no more runs.
        cluster.k("delete", "ir", NAME, "--wait=true", "--timeout=300s", check=False)
        cluster.wait_for(
            lambda: not cluster.json("cronjobs", "-l",
                                     f"molstream.io/ingestrequest={NAME}")["items"],
            "the CronJob to be garbage-collected", timeout_s=300)
