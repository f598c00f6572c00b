"""Pods deleted under a running ingest, as a node drain or an impatient user does: the worker
Pod mid-ingest, then the operator Pod mid-run. The Deployments replace them; the ingest ends
Succeeded with one Job, and the database holds what a clean run leaves: compared row by row
with what the files imply (tests/integration/expected.py, Python's csv module)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from expected import actual_tables, expected_tables
from sqlalchemy import create_engine

pytestmark = pytest.mark.e2e

ROWS = 1_000_000  # ~200 batches of 5,000: the worker is deleted after the first
NAME = "pods-deleted"

RESTRICTED = "{allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}"
# A second source, on HTTP: our image's sample generator (another seed) and Python's file
# server, beside the chart's FTP server (whose files volume is read-only).
SOURCE = f"""
apiVersion: v1
kind: Pod
metadata:
  name: e2e-http
  labels: {{app: e2e-http}}
spec:
  automountServiceAccountToken: false
  # The namespace enforces Pod Security "restricted" (make deploy).
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    seccompProfile: {{type: RuntimeDefault}}
  initContainers:
    - name: sample
      image: molstream:dev
      imagePullPolicy: Never
      args: [sample, --rows={ROWS}, --seed=36, --out=/srv/activities.csv.gz]
      securityContext: {RESTRICTED}
      volumeMounts: [{{name: files, mountPath: /srv}}, {{name: tmp, mountPath: /tmp}}]
  containers:
    - name: http
      image: molstream:dev
      imagePullPolicy: Never
      securityContext: {RESTRICTED}
      command: [python, -m, http.server, "8000", --directory, /srv]
      ports: [{{containerPort: 8000}}]
      readinessProbe: {{tcpSocket: {{port: 8000}}, periodSeconds: 2}}
      volumeMounts: [{{name: files, mountPath: /srv}}]
  volumes: [{{name: files, emptyDir: {{}}}}, {{name: tmp, emptyDir: {{}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: e2e-http}}
spec:
  selector: {{app: e2e-http}}
  ports: [{{port: 8000}}]
"""
INGESTREQUEST = f"""
apiVersion: molstream.io/v1alpha1
kind: IngestRequest
metadata: {{name: {NAME}}}
spec:
  url: http://e2e-http:8000/activities.csv.gz
  batchSize: 5000
"""

# The worker's SQLite database, read through the same connection rules as the worker (WAL
# included) and written to stdout.
DUMP_DB = ("import os, sqlite3, sys; "
           "path = os.environ['MOLSTREAM_DATABASE_URL'].removeprefix('sqlite:///'); "
           "sys.stdout.buffer.write(sqlite3.connect(path).serialize())")


def _pod(cluster, component: str) -> str:
    """The component's one running Pod (not one being deleted)."""
    pods = cluster.json("pods", "-l", f"app.kubernetes.io/component={component}",
                        "--field-selector=status.phase=Running")["items"]
    names = [p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert len(names) == 1, names
    return f"pod/{names[0]}"


def _merge(earlier: dict, later: dict) -> dict:
    """The tables after `earlier`'s file and then `later`'s were upserted: dimension values
    add up, a row of `later` replaces the row with its id."""
    return {table: (earlier[table] | later[table] if isinstance(later[table], set)
                    else {**earlier[table], **later[table]}) for table in later}


def test_worker_and_operator_pods_deleted_mid_run(cluster, ran, tmp_path: Path):
    assert ran.returncode == 0
    cluster.k("apply", "-f", "-", stdin=SOURCE)
    try:
        cluster.k("wait", "--for=condition=Ready", "pod/e2e-http", "--timeout=900s")
        worker, operator = _pod(cluster, "worker"), _pod(cluster, "operator")
        cluster.k("apply", "-f", "-", stdin=INGESTREQUEST)

        applying = cluster.wait_for(
            lambda: (s := cluster.ir_status(NAME)).get("rowsWritten") and s,
            "the worker's first batch")
        assert applying["rowsWritten"] < ROWS, f"not mid-ingest: {applying}"
        cluster.k("delete", worker, "--wait=false")
        cluster.k("delete", operator, "--wait=false")

        cluster.k("wait", "--for=condition=Complete", f"ir/{NAME}", "--timeout=1800s")
        status = cluster.ir_status(NAME)
        assert (status["phase"], status["rowsWritten"], status["rowsRejected"]) == (
            "Succeeded", ROWS, 0), status
        assert status["report"]["activity"] == ROWS
        # Replaced, not restarted in place.
        assert _pod(cluster, "worker") != worker and _pod(cluster, "operator") != operator
        jobs = cluster.json("jobs", "-l", f"molstream.io/ingestrequest={NAME}")["items"]
        assert [j["metadata"]["name"] for j in jobs] == [status["jobName"]]
        assert jobs[0]["status"].get("succeeded") == 1 and not jobs[0]["status"].get("failed")

        # What the database holds: the sample of `make run` (the FTP server's file), then this
        # file, each applied once and in order.
        sample, big, db = (tmp_path / "sample.csv.gz", tmp_path / "big.csv.gz",
                           tmp_path / "molstream.db")
        sample.write_bytes(cluster.read_file("deploy/molstream-ftp",
                                             "/srv/ftp/activities.csv.gz"))
        big.write_bytes(cluster.read_file("pod/e2e-http", "/srv/activities.csv.gz"))
        db.write_bytes(cluster.exec_bytes("deploy/molstream-worker", "python", "-c", DUMP_DB))
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        engine = create_engine(f"sqlite:///{db}")
        try:
            actual = actual_tables(engine)
        finally:
            engine.dispose()
        expected = _merge(expected_tables(sample), expected_tables(big))
        for table in expected:
            assert actual[table] == expected[table], f"{table} differs from a clean run"
    finally:
        cluster.k("delete", "-f", "-", "--wait=false", stdin=INGESTREQUEST + "---" + SOURCE,
                  check=False)
