"""`skaffold run` (skaffold built from its Go module, tools/provision/skaffold.sh) on the cluster
`make run` set up: it upgrades the same release with its own image and the dev settings, the
sample still runs to the end, and `make run` takes the release back. (`skaffold dev` is the
same deploy plus file sync and a watch loop; `make dev` runs it.)"""

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


def _claim_uid(cluster) -> str:
    return cluster.json("pvc", "molstream-data")["metadata"]["uid"]


def test_skaffold_run_upgrades_the_release_of_make_run_and_back(cluster, ran, tmp_path: Path):
    assert ran.returncode == 0
    assert (BIN / "skaffold").exists(), "make e2e-node builds it (tools/provision/skaffold.sh)"
    assert os.environ.get("E2E_PYTHON_IMAGE"), "profile e2e's base image: run `make e2e`"
    config = tmp_path / "skaffold-config.yaml"
    config.write_text(QUIET)
    revision, claim = _revision(cluster), _claim_uid(cluster)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    done = subprocess.run(
        [str(BIN / "skaffold"), "run", "--profile", "e2e", "--kube-context", cluster.context,
         "--config", str(config)],
        cwd=REPO, env=env, text=True, capture_output=True, timeout=1800)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]

    # One release, upgraded in place: the molstream Pods run skaffold's image, the database's
    # claim is the one `make run` made.
    assert _revision(cluster) == revision + 1
    images = _images(cluster)
    for name in ("molstream-worker", "molstream-operator"):
        assert images[name].startswith("molstream:") and images[name] != "molstream:dev", images
    assert _claim_uid(cluster) == claim

    # The pipeline works on what skaffold deployed: the sample, run again, ends Succeeded.
    # Forced: the demo FTP server's file has not changed, and a plain rerun would end at once
    # as Unchanged, publishing nothing.
    before = cluster.ir_status(SAMPLE)
    cluster.k("annotate", "ir", SAMPLE, "molstream.io/rerun=force-skaffold", "--overwrite")
    after = cluster.wait_for(
        lambda: (s := cluster.ir_status(SAMPLE)).get("run", 0) > before.get("run", 0)
        and s.get("phase") in ("Succeeded", "Failed") and s,
        "the sample's run on skaffold's release")
    assert after["phase"] == "Succeeded", after
    assert (after["rowsPublished"], after["rowsRejected"]) == (100_000, 0), after

    # And back: `make run` again puts the runtime image back and follows the new run it asks
    # for (the sample exists: a rerun), not the result of the one before.
    again = cluster.make("run")
    assert again.returncode == 0, (again.stdout + again.stderr)[-6000:]
    assert _images(cluster)["molstream-worker"] == "molstream:dev"
    last = cluster.ir_status(SAMPLE)
    assert last["run"] == after["run"] + 1 and last["phase"] == "Succeeded", last
    assert _claim_uid(cluster) == claim


def _revision(cluster) -> int:
    out = subprocess.run(
        [str(BIN / "helm"), "--kube-context", cluster.context, "--namespace",
         "molstream", "status", "molstream", "-o", "json"],
        capture_output=True, text=True, check=True, timeout=120).stdout
    return json.loads(out)["version"]
