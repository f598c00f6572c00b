"""`make run`, the first thing the README tells users to do, on a real kind cluster: image
built from the Dockerfile and loaded, `helm upgrade --install --wait`, `helm test --logs`, the
sample IngestRequest followed to its report."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e

SAMPLE = "ingestrequest-sample"  # k8s/ingestrequest.yaml


def test_make_run_ends_with_the_sample_ingest_succeeded_and_its_report(cluster):
    run = cluster.make("run")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
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
    ns = ("-n", "molstream")
    cluster.kubectl(*ns, "wait", "--for=condition=Complete", f"ir/{SAMPLE}", "--timeout=60s")
    table = cluster.kubectl(*ns, "get", "ir", SAMPLE).stdout.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "WRITTEN", "REJECTED", "PROGRESS", "AGE"], table
    assert table[1].split()[:4] == [SAMPLE, "Succeeded", "100000", "0"], table
    status = json.loads(cluster.kubectl(*ns, "get", "ir", SAMPLE, "-o", "json").stdout)["status"]
    assert status["phase"] == "Succeeded"
    complete = [c for c in status["conditions"] if c["type"] == "Complete"]
    assert complete and complete[0]["status"] == "True"
