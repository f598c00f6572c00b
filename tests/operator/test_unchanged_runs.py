"""Never the same file twice, the operator's side, against a real kube-apiserver and a real
Kafka broker: the identity the fetcher reports is recorded in status when the run completes and
handed to the next runs (Jobs and the CronJob's template); a run whose fetcher finds the source
unchanged ends Succeeded with reason Unchanged; `molstream.io/rerun: force…` forces a run.
The fetcher's and the worker's events are published here as they publish them."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from operator_harness import Namespace, Publisher, ingestrequest, secret, wait_for

pytestmark = [pytest.mark.kube, pytest.mark.kafka]

URL = "ftp://molstream-ftp:2121/activities.csv.gz"
IDENTITY = {
    "source": URL,
    "etag": None,
    "last_modified": "20240501120000",
    "size": 123456,
    "sha256": "ab" * 32,
    "release": None,
}
RECORDED = {"url": URL, "lastModified": "20240501120000", "size": 123456, "sha256": "ab" * 32}


def _env(job: dict[str, Any]) -> dict[str, str]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return {var["name"]: var.get("value") for var in container["env"]}


def _job(ns: Namespace, name: str) -> dict[str, Any]:
    return wait_for(
        lambda: next((j for j in ns.jobs() if j["metadata"]["name"] == name), None),
        what=f"Job {name}",
        context=ns.context,
    )


def _load(publish: Publisher, ingest: str, identity: dict[str, Any]) -> None:
    """A whole successful run, as the fetcher and the worker report it."""
    publish("started", ingest, source=identity["source"])
    publish("identified", ingest, **identity)
    publish("published", ingest, rows_total=10, rows_published=10, rows_rejected=0, batches=1)
    publish(
        "completed",
        ingest,
        rows_published=10,
        rows_written=10,
        rows_rejected=0,
        duration_s=1.0,
        tables={"activity": 10},
        report_path="/r.csv",
    )


def test_a_rerun_of_an_unchanged_source_ends_succeeded_unchanged(
    ns: Namespace, operator_with_kafka: Any, publish: Publisher, kubectl: Any
) -> None:
    ns.apply([secret("pw"), ingestrequest("same")])
    first = _job(ns, "same-run-1")
    assert "MOLSTREAM_SOURCE_LOADED" not in _env(first)  # nothing loaded yet
    ingest = ns.wait_status("same", lambda s: s.get("ingestId"), "an ingest id")["ingestId"]
    _load(publish, ingest, IDENTITY)
    status = ns.wait_phase("same", "Succeeded")
    assert status["source"] == {**RECORDED, "ingestId": ingest}
    assert status["loadedSources"] == [RECORDED]
    assert "runSource" in status and ns.condition("same", "Complete")["reason"] == "Succeeded"

    kubectl("annotate", "ir", "same", "molstream.io/rerun=2", namespace=ns.name)
    second = _job(ns, "same-run-2")
    env = _env(second)
    assert json.loads(env["MOLSTREAM_SOURCE_LOADED"]) == [RECORDED]
    assert "MOLSTREAM_FORCE" not in env
    rerun = ns.wait_status("same", lambda s: s.get("run") == 2, "run 2")
    assert "runSource" not in rerun  # a new run starts without the last one's file

    started = time.monotonic()
    publish("started", rerun["ingestId"], source=URL)
    publish(
        "unchanged",
        rerun["ingestId"],
        matched="modified 20240501120000 and 123456 bytes",
        **IDENTITY,
    )
    status = ns.wait_phase("same", "Succeeded")
    assert time.monotonic() - started < 30
    complete = ns.condition("same", "Complete")
    assert (complete["status"], complete["reason"]) == ("True", "Unchanged")
    assert ns.condition("same", "Failed")["status"] == "False"
    assert "unchanged" in status["message"] and "20240501120000" in status["message"]
    assert URL in status["message"] and "nothing was published" in status["message"]
    assert (status["rowsPublished"], status["rowsWritten"], status["run"]) == (0, 0, 2)
    assert status["source"] == {**RECORDED, "ingestId": ingest}  # still the file run 1 loaded
    kubectl("wait", "--for=condition=Complete", "ir/same", "--timeout=10s", namespace=ns.name)
    assert "Unchanged" in [e["reason"] for e in ns.events("same")]

    # A later reconcile (a spec change) keeps the reason.
    ns.apply(ingestrequest("same", batchSize=2000))
    ns.wait_status("same", lambda s: s.get("observedGeneration") == 2, "generation 2")
    assert ns.condition("same", "Complete")["reason"] == "Unchanged"

    # Forced: the Job is told to ingest whatever it finds.
    kubectl(
        "annotate", "ir", "same", "molstream.io/rerun=force-3", "--overwrite", namespace=ns.name
    )
    assert _env(_job(ns, "same-run-3"))["MOLSTREAM_FORCE"] == "true"
    third = ns.wait_status("same", lambda s: s.get("run") == 3, "run 3")["ingestId"]
    newer = {**IDENTITY, "last_modified": "20240601120000", "sha256": "cd" * 32}
    _load(publish, third, newer)
    status = ns.wait_status(
        "same", lambda s: s.get("source", {}).get("ingestId") == third, "run 3's file recorded"
    )
    assert ns.condition("same", "Complete")["reason"] == "Succeeded"
    assert status["loadedSources"] == [
        {**RECORDED, "lastModified": "20240601120000", "sha256": "cd" * 32}
    ]  # one entry per URL


def test_a_scheduled_ingest_s_cronjob_learns_what_was_loaded(
    ns: Namespace, operator_with_kafka: Any, publish: Publisher, admin: Any
) -> None:
    pattern = "ftp://molstream-ftp:2121/releases/chembl_*/activities.csv.gz"
    ns.apply([secret("pw"), ingestrequest("nightly", url=pattern, schedule="0 3 * * *")])
    (cronjob,) = wait_for(ns.cronjobs, what="the CronJob", context=ns.context)
    template = cronjob["spec"]["jobTemplate"]
    assert "MOLSTREAM_SOURCE_LOADED" not in _env(template)
    # Play the CronJob controller: a Job from the template.
    admin.create(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "nightly-cron-29400000",
                "namespace": ns.name,
                "labels": template["metadata"]["labels"],
                "annotations": template["metadata"]["annotations"],
            },
            "spec": template["spec"],
        }
    )
    ingest = f"{ns.name}.nightly.nightly-cron-29400000"
    ns.wait_status("nightly", lambda s: s.get("ingestId") == ingest, "the scheduled run")
    match = {
        **IDENTITY,
        "source": "ftp://molstream-ftp:2121/releases/chembl_35/activities.csv.gz",
        "release": "chembl_35",
    }
    _load(publish, ingest, match)
    status = ns.wait_phase("nightly", "Succeeded")
    assert status["source"]["release"] == "chembl_35"
    assert status["source"]["url"].endswith("/chembl_35/activities.csv.gz")
    loaded = wait_for(
        lambda: _env(ns.cronjobs()[0]["spec"]["jobTemplate"]).get("MOLSTREAM_SOURCE_LOADED"),
        what="the CronJob's template updated",
        context=ns.context,
    )
    assert json.loads(loaded) == status["loadedSources"]


def test_a_glob_in_an_http_url_is_refused(ns: Namespace, kubectl: Any) -> None:
    refused = kubectl(
        "apply",
        "-f",
        "-",
        namespace=ns.name,
        check=False,
        input=json.dumps(ingestrequest("globbed", url="https://molstream-ftp/chembl_*/a.csv")),
    )
    assert refused.returncode != 0
    assert "globs (*, ?, [...]) are supported in ftp and ftps URLs only" in refused.stderr
    ns.apply(ingestrequest("literal", url="https://molstream-ftp/a%2Ab.csv?x=1"))  # accepted
