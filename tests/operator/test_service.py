"""IngestService decisions with an in-memory stand-in for the API server (unit, no services):
first run, rerun, invalid spec, schedules, events of scheduled runs not yet seen as Jobs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from molstream_operator import status as st
from molstream_operator.config import OperatorConfig
from molstream_operator.ingest_events import IngestEvent
from molstream_operator.service import IngestService, RetryLater

NS = "chem"
CLOCK = 1_767_225_600.0  # 2026-01-01T00:00:00Z


class FakeKube:
    """The few calls IngestService makes, on dicts in memory."""

    def __init__(self) -> None:
        self.irs: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.cronjobs: dict[str, dict[str, Any]] = {}
        self.notes: list[st.Note] = []
        self.patched_jobs: list[tuple[str, dict[str, Any]]] = []

    def add_ir(self, name: str, spec: dict[str, Any], annotations: dict[str, str] | None = None):
        self.irs[name] = {
            "apiVersion": "molstream.io/v1alpha1",
            "kind": "IngestRequest",
            "metadata": {
                "name": name,
                "namespace": NS,
                "uid": f"uid-{name}",
                "generation": 1,
                "annotations": annotations or {},
            },
            "spec": spec,
        }
        return self.irs[name]

    def get_ingestrequest(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.irs.get(name))

    def update_status(
        self, namespace: str, name: str, compute: Callable[[dict[str, Any]], st.Change | None]
    ) -> tuple[dict[str, Any] | None, st.Change | None]:
        body = self.get_ingestrequest(namespace, name)
        if body is None:
            return None, None
        change = compute(body)
        if change is not None:
            self.irs[name]["status"] = change.status
            self.notes.extend(change.notes)
        return body, change

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.jobs.get(name))

    def get_cronjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.cronjobs.get(name))

    def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        store = self.jobs if obj["kind"] == "Job" else self.cronjobs
        name = obj["metadata"]["name"]
        if name in store:
            return None
        stored = copy.deepcopy(obj)
        stored["metadata"]["creationTimestamp"] = st.format_time(CLOCK)
        store[name] = stored
        return stored

    def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.patched_jobs.append((name, patch))
        self.jobs[name]["spec"].update(patch["spec"])
        return self.jobs[name]

    def patch_cronjob(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.cronjobs[name]["spec"] = patch["spec"]
        return self.cronjobs[name]

    def delete_cronjob(self, namespace: str, name: str) -> bool:
        return self.cronjobs.pop(name, None) is not None


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


@pytest.fixture
def service(kube: FakeKube) -> IngestService:
    config = OperatorConfig(allowed_hosts=("molstream-ftp",), namespaces=(NS,))
    return IngestService(kube=kube, config=config, clock=lambda: CLOCK)  # type: ignore[arg-type]


URL = "ftp://molstream-ftp:2121/a.csv.gz"


def test_first_run_then_idempotent(kube: FakeKube, service: IngestService) -> None:
    kube.add_ir("a", {"url": URL})
    service.reconcile(kube.irs["a"])
    assert list(kube.jobs) == ["a-run-1"]
    status = kube.irs["a"]["status"]
    assert status["run"] == 1 and status["phase"] == "Pending" and status["rerunToken"] == ""
    for _ in range(3):  # resume, resume, update: never a second Job
        service.reconcile(kube.irs["a"])
    assert list(kube.jobs) == ["a-run-1"]
    assert [n.reason for n in kube.notes] == ["RunStarted"]


def test_lost_job_is_recreated_only_while_pending(kube: FakeKube, service: IngestService) -> None:
    kube.add_ir("a", {"url": URL})
    service.reconcile(kube.irs["a"])
    kube.jobs.clear()  # the operator died between the status write and the Job creation
    service.reconcile(kube.irs["a"])
    assert list(kube.jobs) == ["a-run-1"]
    kube.irs["a"]["status"]["phase"] = "Succeeded"
    kube.jobs.clear()  # deleted after the run (a person, a TTL): not relaunched
    service.reconcile(kube.irs["a"])
    assert kube.jobs == {}


def test_a_lost_job_is_made_with_the_ingest_id_its_run_recorded(
    kube: FakeKube, service: IngestService
) -> None:
    """A run started by an older operator (ids without the uid) keeps its id."""
    kube.add_ir("a", {"url": URL})
    service.reconcile(kube.irs["a"])
    assert kube.irs["a"]["status"]["ingestId"] == f"{NS}.a.1-uid-a"
    kube.jobs.clear()
    kube.irs["a"]["status"]["ingestId"] = f"{NS}.a.1"
    service.reconcile(kube.irs["a"])
    annotations = kube.jobs["a-run-1"]["metadata"]["annotations"]
    assert annotations["molstream.io/ingest-id"] == f"{NS}.a.1"


def test_a_job_of_an_older_object_is_not_taken_for_ours(
    kube: FakeKube, service: IngestService
) -> None:
    kube.add_ir("a", {"url": URL})
    kube.jobs["a-run-1"] = {"metadata": {"name": "a-run-1", "ownerReferences": [{"uid": "old"}]}}
    with pytest.raises(RetryLater, match="belongs to another object"):
        service.reconcile(kube.irs["a"])


def test_rerun_annotation(kube: FakeKube, service: IngestService) -> None:
    ir = kube.add_ir("a", {"url": URL}, {"molstream.io/rerun": "x"})
    service.reconcile(ir)
    assert list(kube.jobs) == ["a-run-1"]  # the annotation present at creation asks for nothing
    ir["metadata"]["annotations"]["molstream.io/rerun"] = "y"
    service.reconcile(ir)
    assert sorted(kube.jobs) == ["a-run-1", "a-run-2"]
    assert kube.irs["a"]["status"]["ingestId"] == f"{NS}.a.2-uid-a"
    service.reconcile(ir)
    assert len(kube.jobs) == 2


def test_suspend_toggles_the_job(kube: FakeKube, service: IngestService) -> None:
    ir = kube.add_ir("a", {"url": URL, "suspend": True})
    service.reconcile(ir)
    assert kube.jobs["a-run-1"]["spec"]["suspend"] is True
    ir["spec"]["suspend"] = False
    service.reconcile(ir)
    assert kube.patched_jobs == [("a-run-1", {"spec": {"suspend": False}})]


def test_invalid_spec_then_fixed(kube: FakeKube, service: IngestService) -> None:
    ir = kube.add_ir("a", {"url": "https://elsewhere.test/a.csv"})
    service.reconcile(ir)
    status = kube.irs["a"]["status"]
    assert status["phase"] == "Failed" and "allow-list" in status["message"]
    assert kube.jobs == {}
    ir["spec"]["url"] = URL
    ir["metadata"]["generation"] = 2
    service.reconcile(ir)
    status = kube.irs["a"]["status"]
    assert status["phase"] == "Pending" and status["observedGeneration"] == 2
    assert list(kube.jobs) == ["a-run-1"]


def test_schedule(kube: FakeKube, service: IngestService) -> None:
    ir = kube.add_ir("n", {"url": URL, "schedule": "0 3 * * *"})
    service.reconcile(ir)
    assert list(kube.cronjobs) == ["n-cron"] and kube.jobs == {}
    status = kube.irs["n"]["status"]
    assert status["phase"] == "Pending"
    assert status["message"] == "waiting for the first scheduled run"
    assert status["cronJobName"] == "n-cron"
    ir["spec"]["schedule"] = "15 4 * * *"
    service.reconcile(ir)
    assert kube.cronjobs["n-cron"]["spec"]["schedule"] == "15 4 * * *"
    del ir["spec"]["schedule"]
    ir["status"] = kube.irs["n"]["status"]
    service.reconcile(ir)
    assert kube.cronjobs == {} and list(kube.jobs) == ["n-run-1"]


def _event(kind: str, ingest: str, **data: Any) -> IngestEvent:
    return IngestEvent(type=kind, ingest_id=ingest, ts=CLOCK + 120, data=data)


def test_event_of_a_scheduled_run_not_seen_yet(kube: FakeKube, service: IngestService) -> None:
    ir = kube.add_ir("n", {"url": URL, "schedule": "*/5 * * * *"})
    service.reconcile(ir)
    job_name = "n-cron-29400000"
    kube.jobs[job_name] = {
        "metadata": {
            "name": job_name,
            "namespace": NS,
            "creationTimestamp": st.format_time(CLOCK + 60),
            "labels": {"molstream.io/ingestrequest": "n", "molstream.io/scheduled": "true"},
            "annotations": {"molstream.io/ingestrequest-name": "n"},
        },
    }
    outcome = service.on_event(_event("started", f"{NS}.n.{job_name}", source=URL))
    assert outcome == "applied"
    status = kube.irs["n"]["status"]
    assert status["jobName"] == job_name and status["phase"] == "Fetching"
    assert status["ingestId"] == f"{NS}.n.{job_name}"
    assert [n.reason for n in kube.notes][-2:] == ["RunStarted", "Fetching"]
    # a Job name that is no Job of ours changes nothing
    assert service.on_event(_event("started", f"{NS}.n.n-cron-1")).startswith("ignored")
    # a late event of a counter run (before the schedule was set) is not taken for a Job's
    looked_up: list[str] = []
    get_job = kube.get_job
    kube.get_job = lambda namespace, name: looked_up.append(name) or get_job(namespace, name)
    assert service.on_event(_event("progress", f"{NS}.n.2-0c1d2e3f")).startswith("ignored")
    assert looked_up == []


def test_events_outside_the_served_namespaces_are_ignored(service: IngestService) -> None:
    assert service.on_event(_event("started", "other.n.1")) == "ignored: namespace not served"
    assert service.on_event(_event("started", "bare-id")).startswith("ignored")
    assert service.on_event(_event("started", f"{NS}.missing.1")).startswith("ignored")
