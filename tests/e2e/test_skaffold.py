"""`skaffold run` (skaffold built from its Go module, tools/provision/skaffold.sh) on the cluster
`make run` set up: it upgrades the same release with its own image and the dev settings, and
the sample still runs to the end. (`skaffold dev` is the same deploy plus file sync and a
watch loop; `make dev` runs it.)"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".cache/bin"  # skaffold, and the kind, helm and kubectl it calls
SAMPLE = "ingestrequest-sample"
# Skaffold's global config, kept out of the machine's: no usage data sent, no update check.
QUIET = """
global:
  collect-metrics: false
  update-check: false
  survey: {disable-prompt: true}
"""


def _images(cluster) -> dict[str, str]:
    deployments = cluster.json("deployments")["items"]
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
            for d in deployments}


def test_skaffold_run_upgrades_the_release_of_make_run(cluster, ran, tmp_path: Path):
    assert ran.returncode == 0
    assert (BIN / "skaffold").exists(), "make e2e-node builds it (tools/provision/skaffold.sh)"
    config = tmp_path / "skaffold-config.yaml"
    config.write_text(QUIET)
    revision = _revision(cluster)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    done = subprocess.run(
        [str(BIN / "skaffold"), "run", "--profile", "e2e", "--kube-context", cluster.context,
         "--config", str(config)],
        cwd=REPO, env=env, text=True, capture_output=True, timeout=1800)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]

    # One release, upgraded in place: the molstream Pods run skaffold's image; Kafka, Redis
    # and the database are the ones `make run` installed.
    assert _revision(cluster) == revision + 1
    images = _images(cluster)
    for name in ("molstream-worker", "molstream-operator"):
        assert images[name].startswith("molstream:") and images[name] != "molstream:dev", images
    assert cluster.k("get", "pvc", "-o", "name").stdout.split()  # the claims stay

    # The pipeline works on what skaffold deployed: the sample, run again, ends Succeeded.
    before = cluster.ir_status(SAMPLE)
    cluster.k("annotate", "ir", SAMPLE, "molstream.io/rerun=skaffold", "--overwrite")
    after = cluster.wait_for(
        lambda: (s := cluster.ir_status(SAMPLE)).get("run", 0) > before.get("run", 0)
        and s.get("phase") in ("Succeeded", "Failed") and s,
        "the sample's run on skaffold's release")
    assert after["phase"] == "Succeeded", after
    assert (after["rowsPublished"], after["rowsRejected"]) == (100_000, 0), after


def _revision(cluster) -> int:
    out = subprocess.run(
        [str(BIN / "helm"), "--kube-context", cluster.context, "--namespace",
         "molstream", "status", "molstream", "-o", "json"],
        capture_output=True, text=True, check=True, timeout=120).stdout
    return json.loads(out)["version"]
