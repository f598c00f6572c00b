"""The fetcher Job's policies: the fetcher's exit status for a permanent error (which the Job's
podFailurePolicy fails on at once), and the IngestRequest that says so at once; finished Jobs of
scheduled runs pruned to the history limits.

The exit status is read from the fetcher's own command line; the Job side runs against the real
test API server, where the test plays the Job controller (no controller-manager runs there): it
writes the conditions the controller writes when a podFailurePolicy rule matches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from fetcher_pods import (
    FETCHER_SA,
    create_pod,
    create_scheduled_job,
    job_failed_by_policy,
    kubelet_terminated,
)
from molstream import cli, fetcher
from molstream.contract import ContractError
from molstream.fetch.common import FetchError, Transient
from molstream.publish import PublishError
from molstream.read import ReadError
from molstream_operator.manifests import FETCHER_EXIT_PERMANENT
from operator_harness import Namespace, ingestrequest, wait_for

# --- the fetcher's exit status -------------------------------------------------------------------


def _failing(stage: str, error: BaseException, cause: BaseException | None = None) -> Any:
    """fetcher.run failing the way it does: the stage's error turned into IngestFailed."""

    def run(*_: Any, **__: Any) -> None:
        try:
            if cause is None:
                raise error
            try:
                raise cause
            except type(cause):
                raise error from None
        except (FetchError, ReadError, ContractError, PublishError) as e:
            raise fetcher.IngestFailed(stage, str(e)) from None

    return run


PERMANENT = [
    ("fetch", FetchError("ftp://h/a.csv: login refused (530 Login incorrect)")),
    ("fetch", FetchError("https://h/a.csv: no such file (HTTP 404)")),
    ("fetch", FetchError("https://h/a.csv: access refused (HTTP 403): check the username")),
    ("fetch", FetchError("https://h/a.csv: host 'evil' is not on the allow-list")),
    ("read", ReadError("line 3: a quoted field is never closed")),
    ("read", ContractError("missing required column(s): activity_id")),
]
RETRIED = [
    ("publish", PublishError("cannot reach Kafka at kafka:9092")),
    ("fetch", FetchError("ftp://h/a.csv: download took longer than 600s "
                         "(MOLSTREAM_DOWNLOAD_TIMEOUT_S)")),
]


@pytest.mark.parametrize(("stage", "error"), PERMANENT)
def test_a_permanent_error_exits_with_the_status_the_job_fails_on(
    monkeypatch: pytest.MonkeyPatch, stage: str, error: BaseException
) -> None:
    monkeypatch.setattr(fetcher, "run", _failing(stage, error))
    result = CliRunner().invoke(cli.main, ["fetch", "--url", "https://h/a.csv"])
    assert result.exit_code == cli.EXIT_PERMANENT == FETCHER_EXIT_PERMANENT == 3, result.output
    assert f"error: {stage} failed: {error}" in result.output


@pytest.mark.parametrize(("stage", "error"), RETRIED)
def test_a_failure_a_retry_may_overcome_exits_2(
    monkeypatch: pytest.MonkeyPatch, stage: str, error: BaseException
) -> None:
    monkeypatch.setattr(fetcher, "run", _failing(stage, error))
    result = CliRunner().invoke(cli.main, ["fetch", "--url", "https://h/a.csv"])
    assert result.exit_code == cli.EXIT_FAILED == 2, result.output


def test_a_download_that_gave_up_after_its_retries_exits_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gave_up = FetchError("ftp://h/a.csv: giving up after 6 attempt(s): connection refused")
    monkeypatch.setattr(fetcher, "run", _failing("fetch", gave_up, Transient("refused")))
    result = CliRunner().invoke(cli.main, ["fetch", "--url", "https://h/a.csv"])
    assert result.exit_code == 2, result.output


def test_a_bad_loaded_list_is_permanent() -> None:
    result = CliRunner().invoke(cli.main, ["fetch", "--url", "https://h/a.csv",
                                           "--loaded", "not json"])
    assert result.exit_code == cli.EXIT_PERMANENT, result.output


# --- against the real API server -----------------------------------------------------------------

PLACEMENT = {
    "imagePullSecrets": [{"name": "regcred"}],
    "nodeSelector": {"kubernetes.io/arch": "amd64"},
    "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 1, "preference": {"matchExpressions": [
            {"key": "pool", "operator": "In", "values": ["ingest"]}]}}]}},
    "priorityClassName": "batch-low",
    "ttlSecondsAfterFinished": 900,
}


def _request(name: str, **spec: Any) -> dict[str, Any]:
    return ingestrequest(name, url="https://data.example.org/activities.csv.gz",
                         credentialsSecret=None, **spec)


@pytest.mark.kube
def test_the_api_server_takes_the_job_with_its_placement_and_policies(
    ns: Namespace, start_operator: Any, fetcher_template: Path
) -> None:
    template = yaml.safe_load(fetcher_template.read_text())
    fetcher_template.write_text(yaml.safe_dump({**template, **PLACEMENT}))
    ns.context = start_operator().tail
    ns.apply([_request("placed"), _request("nightly", schedule="0 3 * * *")])
    jobs = ns.wait_jobs(1)
    (job,) = [j for j in jobs if j["metadata"]["name"] == "placed-run-1"]
    pod = job["spec"]["template"]["spec"]
    for key in ("imagePullSecrets", "nodeSelector", "tolerations", "affinity",
                "priorityClassName"):
        assert pod[key] == PLACEMENT[key], key
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["ttlSecondsAfterFinished"] == 900
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert rules[0]["action"] == "FailJob"
    assert rules[0]["onExitCodes"]["values"] == [FETCHER_EXIT_PERMANENT]
    assert rules[1]["action"] == "Ignore"
    (cronjob,) = wait_for(ns.cronjobs, what="the CronJob", context=ns.context)
    assert cronjob["spec"]["jobTemplate"]["spec"]["podFailurePolicy"] == job["spec"][
        "podFailurePolicy"]
    assert cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["imagePullSecrets"] == [
        {"name": "regcred"}]
    assert (cronjob["spec"]["successfulJobsHistoryLimit"],
            cronjob["spec"]["failedJobsHistoryLimit"]) == (3, 1)


@pytest.mark.kube
def test_a_permanent_error_fails_the_request_at_once(ns: Namespace, start_operator: Any) -> None:
    ns.context = start_operator().tail
    ns.apply([FETCHER_SA, _request("wrongpw", backoffLimit=6)])
    ns.wait_jobs(1)
    pod = create_pod(ns, "wrongpw-run-1")
    ns.job_status("wrongpw-run-1", "active")
    ns.wait_phase("wrongpw", "Fetching")
    said = "fetch failed: https://data.example.org/activities.csv.gz: access refused (HTTP 401)"
    kubelet_terminated(ns, pod, FETCHER_EXIT_PERMANENT,
                       '{"message": "ingest x: fetch failed"}\n'
                       f"error: {said}\n")
    # the Job controller: FailureTarget at once (the Pod's retries are not made) ...
    job_failed_by_policy(ns, "wrongpw-run-1", pod, FETCHER_EXIT_PERMANENT, failed=False)
    status = ns.wait_phase("wrongpw", "Failed")
    assert status["message"] == (
        "Job wrongpw-run-1 failed: the fetcher ended with a permanent error (exit status 3, "
        f"not retried): {said}"
    )
    failed = ns.condition("wrongpw", "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "PermanentError")
    # ... then Failed, once the Pods are gone: the run stays as it ended
    job_failed_by_policy(ns, "wrongpw-run-1", pod, FETCHER_EXIT_PERMANENT, failed=True)
    assert ns.status("wrongpw")["message"] == status["message"]
    assert len(ns.jobs()) == 1


@pytest.mark.kube
def test_scheduled_runs_keep_their_history_limits(ns: Namespace, start_operator: Any) -> None:
    ns.context = start_operator().tail
    ns.apply(_request("nightly", schedule="0 3 * * *", successfulJobsHistoryLimit=2,
                      failedJobsHistoryLimit=1))
    (cronjob,) = wait_for(ns.cronjobs, what="the CronJob", context=ns.context)
    assert (cronjob["spec"]["successfulJobsHistoryLimit"],
            cronjob["spec"]["failedJobsHistoryLimit"]) == (2, 1)

    def scheduled(minutes: int) -> str:
        return create_scheduled_job(ns, "nightly-cron", minutes)

    runs = [(29400000 + i, outcome) for i, outcome in enumerate(
        ["complete", "failed", "complete", "failed", "complete", "complete"])]
    for minutes, outcome in runs:
        name = scheduled(minutes)
        ns.wait_status("nightly", lambda s, n=name: s.get("jobName") == n, f"run {name}")
        ns.job_status(name, outcome)
    # the newest 2 successful and the newest failed remain; one still running is never touched
    running = scheduled(29400100)
    ns.wait_status("nightly", lambda s: s.get("jobName") == running, "the running run")
    kept = {"nightly-cron-29400003", "nightly-cron-29400004", "nightly-cron-29400005", running}
    wait_for(lambda: {j["metadata"]["name"] for j in ns.jobs()
                      if not j["metadata"].get("deletionTimestamp")} == kept,
             what=f"only {sorted(kept)} left", context=ns.context)
