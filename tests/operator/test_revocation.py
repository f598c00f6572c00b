"""A Secret revoked after the IngestRequest was accepted stops being used, and runs never share a
Job name, against the real test kube-apiserver.

* The owner of a credentialsSecret removes its opt-in label: the next scheduled Job is deleted
  as soon as it appears and the CronJob suspended, the IngestRequest Failed naming the Secret
  and the label; once labelled again, a ``molstream.io/rerun`` runs it again (and the CronJob's
  runs go on).
* A refused spec stops what runs: an unfinished Job is suspended (its Pods stop), the CronJob
  suspended, whatever spec.suspend says, and the status says so.
* ``team.x`` and ``team-x`` get two Jobs; a Job name held by another object's Job is reported as
  taken, once, never as created.

No controller-manager runs here: the test plays the CronJob controller (a Job made from the
CronJob's jobTemplate) and the Job controller (its status).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fetcher_pods import create_scheduled_job
from molstream_operator.models import SOURCE_CREDENTIALS_LABEL
from operator_harness import Namespace, ingestrequest, secret, wait_for

pytestmark = pytest.mark.kube

SECRET = "source-creds"
URL = "https://data.example.org/activities.csv.gz"


def _request(name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("credentialsSecret", {"name": SECRET})
    return ingestrequest(name, url=URL, allowInsecureCredentials=None, **spec)


def _label(ns: Namespace, on: bool) -> None:
    value = f"{SOURCE_CREDENTIALS_LABEL}=true" if on else f"{SOURCE_CREDENTIALS_LABEL}-"
    ns.kubectl("label", "secret", SECRET, value, "--overwrite", namespace=ns.name)


def _cronjob(ns: Namespace, name: str) -> dict[str, Any]:
    cronjob = ns.admin.get_cronjob(ns.name, name)
    assert cronjob is not None, f"CronJob {name} is gone"
    return cronjob


def _job_names(ns: Namespace) -> set[str]:
    return {j["metadata"]["name"] for j in ns.jobs() if not j["metadata"].get("deletionTimestamp")}


def _annotate(ns: Namespace, name: str, key: str, value: str) -> None:
    ns.kubectl("annotate", "ingestrequest", name, f"{key}={value}", "--overwrite",
               namespace=ns.name)


def test_a_revoked_secret_stops_the_scheduled_runs_until_restored_and_rerun(
    ns: Namespace, start_operator: Any
) -> None:
    op = start_operator()
    ns.context = op.tail
    ns.apply([secret("pw", name=SECRET), _request("nightly", schedule="0 3 * * *")])
    wait_for(lambda: ns.admin.get_cronjob(ns.name, "nightly-cron"), what="the CronJob",
             context=ns.context)
    # labelled: a scheduled run is followed as usual
    first = create_scheduled_job(ns, "nightly-cron", 29400000)
    ns.wait_status("nightly", lambda s: s.get("jobName") == first, "the first scheduled run")
    ns.job_status(first, "complete")
    ns.wait_phase("nightly", "Ingesting")

    # the Secret's owner takes the label away; nothing touches the IngestRequest
    _label(ns, on=False)
    second = create_scheduled_job(ns, "nightly-cron", 29400060)
    status = ns.wait_phase("nightly", "Failed")
    assert status["message"].startswith(
        "invalid spec: spec.credentialsSecret.name: Secret 'source-creds' is not labelled "
        "molstream.io/source-credentials: \"true\""), status["message"]
    assert f"scheduled Job {second} deleted" in status["message"]
    assert "CronJob nightly-cron suspended" in status["message"]
    assert ns.condition("nightly", "Failed")["reason"] == "InvalidSpec"
    assert ns.condition("nightly", "Ready")["status"] == "False"
    wait_for(lambda: second not in _job_names(ns), what=f"{second} deleted", context=ns.context)
    assert _cronjob(ns, "nightly-cron")["spec"]["suspend"] is True
    assert first in _job_names(ns)  # a finished run is history, left alone
    assert status["jobName"] == first  # the deleted Job never became the run

    # touching the IngestRequest while the label is still gone changes nothing of that
    ns.apply(_request("nightly", schedule="0 3 * * *", batchSize=100))
    ns.wait_status("nightly", lambda s: s.get("observedGeneration") == 2, "generation 2")
    time.sleep(1)
    assert ns.status("nightly")["phase"] == "Failed"
    assert _cronjob(ns, "nightly-cron")["spec"]["suspend"] is True
    assert _job_names(ns) == {first}

    # labelled again, and a rerun asked: it runs again, the schedule goes on
    _label(ns, on=True)
    _annotate(ns, "nightly", "molstream.io/rerun", "1")
    rerun = ns.wait_status("nightly", lambda s: s.get("jobName") == "nightly-run-1",
                           "the rerun's Job")
    assert rerun["phase"] == "Pending"
    assert ns.condition("nightly", "Ready")["status"] == "True"
    wait_for(lambda: "nightly-run-1" in _job_names(ns), what="Job nightly-run-1",
             context=ns.context)
    wait_for(lambda: _cronjob(ns, "nightly-cron")["spec"]["suspend"] is False,
             what="the CronJob resumed", context=ns.context)
    third = create_scheduled_job(ns, "nightly-cron", 29400120)
    ns.wait_status("nightly", lambda s: s.get("jobName") == third, "the next scheduled run")
    ns.job_status(third, "active")
    ns.wait_phase("nightly", "Fetching")
    assert third in _job_names(ns)


def test_a_refused_spec_stops_the_running_job_and_the_cronjob(
    ns: Namespace, start_operator: Any
) -> None:
    op = start_operator()
    ns.context = op.tail
    ns.apply([secret("pw", name=SECRET), _request("once"),
              _request("nightly", schedule="0 3 * * *")])
    ns.wait_jobs(1)
    ns.job_status("once-run-1", "active")
    ns.wait_phase("once", "Fetching")
    wait_for(lambda: ns.admin.get_cronjob(ns.name, "nightly-cron"), what="the CronJob",
             context=ns.context)

    _label(ns, on=False)
    # the running Job: the next change of the IngestRequest stops it
    ns.apply(_request("once", batchSize=100))
    status = ns.wait_phase("once", "Failed")
    assert "Secret 'source-creds' is not labelled" in status["message"]
    assert status["message"].endswith(
        "; stopped until the spec is accepted: Job once-run-1 suspended"), status["message"]
    job = ns.admin.get_job(ns.name, "once-run-1")
    assert job is not None and job["spec"]["suspend"] is True

    # spec.suspend: true is honoured although the rest of the spec is refused
    ns.apply(_request("nightly", schedule="0 3 * * *", suspend=True))
    status = ns.wait_phase("nightly", "Failed")
    assert "CronJob nightly-cron suspended" in status["message"]
    assert _cronjob(ns, "nightly-cron")["spec"]["suspend"] is True
    assert ns.condition("nightly", "Failed")["reason"] == "InvalidSpec"


def test_team_dot_x_and_team_dash_x_get_their_own_jobs(
    ns: Namespace, start_operator: Any
) -> None:
    op = start_operator()
    ns.context = op.tail
    ns.apply([_request("team.x", credentialsSecret=None),
              _request("team-x", credentialsSecret=None)])
    jobs = ns.wait_jobs(2)
    owners = {
        j["metadata"]["name"]: j["metadata"]["annotations"]["molstream.io/ingestrequest-name"]
        for j in jobs
    }
    assert len(owners) == 2 and sorted(owners.values()) == ["team-x", "team.x"]
    for name in ("team.x", "team-x"):
        status = ns.wait_phase(name, "Pending")
        (mine,) = [job for job, owner in owners.items() if owner == name]
        assert status["jobName"] == mine
        assert ns.condition(name, "Ready")["message"] == f"Job {mine} created"
        job = next(j for j in jobs if j["metadata"]["name"] == mine)
        assert job["metadata"]["ownerReferences"][0]["uid"] == ns.ir(name)["metadata"]["uid"]
    assert owners.get("team-x-run-1") == "team-x"
    assert "belongs to another object" not in op.log()


def test_a_job_name_taken_by_another_object_is_said_once_never_created(
    ns: Namespace, start_operator: Any
) -> None:
    op = start_operator()
    ns.context = op.tail
    # a Job of another IngestRequest (or of anyone) already holds the name the run would get
    ns.admin.create({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "taken-run-1", "namespace": ns.name,
                     "annotations": {"molstream.io/ingestrequest-name": "someone-else"}},
        "spec": {"suspend": True, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "registry.test/other:1"}]}}},
    })
    ns.apply(_request("taken", credentialsSecret=None))
    status = ns.wait_phase("taken", "Failed")
    assert status["message"] == (
        "Job name taken-run-1 is taken by a Job of another object (IngestRequest someone-else): "
        "no run started (delete that Job, then annotate molstream.io/rerun to try again)")
    assert ns.condition("taken", "Failed")["reason"] == "JobNameTaken"
    assert ns.condition("taken", "Ready")["status"] == "False"
    # once, not a retry loop; a touch of the object says nothing new
    ns.apply(_request("taken", credentialsSecret=None, batchSize=100))
    ns.wait_status("taken", lambda s: s.get("observedGeneration") == 2, "generation 2")
    time.sleep(2)
    ours = [e for e in ns.events("taken") if e["reason"] != "Logging"]  # (not kopf's own)
    assert "created" not in json.dumps(ns.status("taken")) + json.dumps(ours)
    assert [e["reason"] for e in ours] == ["JobNameTaken"]
    assert "belongs to another object" not in op.log()
    assert ns.status("taken").get("run", 0) == 0

    # the name freed and a rerun asked: the run starts
    ns.admin.request("DELETE", f"/apis/batch/v1/namespaces/{ns.name}/jobs/taken-run-1",
                     body={"propagationPolicy": "Background"})
    _annotate(ns, "taken", "molstream.io/rerun", "1")
    status = ns.wait_status("taken", lambda s: s.get("jobName") == "taken-run-1", "its run")
    assert status["phase"] == "Pending"
    job = wait_for(lambda: ns.admin.get_job(ns.name, "taken-run-1"), what="its Job",
                   context=ns.context)
    assert job["metadata"]["ownerReferences"][0]["uid"] == ns.ir("taken")["metadata"]["uid"]
