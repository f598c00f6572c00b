"""The CRD-as-template upgrade path, where helm's own checks do not reach.

1. `helm template | kubectl apply` (Argo CD, Flux's post-renderers, GitOps in general) has no
   cluster to `lookup`: the kafka StatefulSet's serviceName, kept from 0.1.0 by a lookup under
   helm upgrade, would render as the new `<fullname>-headless`, a change the API server refuses
   on an existing StatefulSet (spec.serviceName is immutable). kafka.serviceName says it.
2. `--take-ownership` (what the README tells 0.1.0 users to run) skips helm's ownership check
   for every object of the release: templates/crd.yaml looks the CRD up and refuses, naming
   the owner, to let a second release take it from the release that owns it.

Own API server (the CRD is cluster-scoped); hooks skipped as in test_chart_upgrade.py."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from chartlib import CHART
from molstream_dev.kube import REPO_ROOT, KubeAPIServer, MissingBinaryError
from molstream_dev.pytest_kube import Tool, _binary, _runner

PREVIOUS = REPO_ROOT / "tests" / "e2e" / "charts" / "molstream-0.1.0.tgz"
CRD = "crd/ingestrequests.molstream.io"

pytestmark = [pytest.mark.kube, pytest.mark.helm]


class Cluster:
    def __init__(self, server: KubeAPIServer, home: Path) -> None:
        env = dict(os.environ)
        env.update(KUBECONFIG=str(server.kubeconfig), HELM_CACHE_HOME=str(home / "cache"),
                   HELM_CONFIG_HOME=str(home / "config"), HELM_DATA_HOME=str(home / "data"))
        self.kubectl: Tool = _runner(_binary("kubectl"), env)
        self.helm: Tool = _runner(_binary("helm"), env)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    try:
        server = KubeAPIServer.start(tmp_path_factory.mktemp("kube-crd-ownership"))
    except MissingBinaryError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield Cluster(server, tmp_path_factory.mktemp("helm-crd-ownership"))
    finally:
        server.stop()


def test_a_gitops_upgrade_from_0_1_0_applies_the_kafka_statefulset(cluster: Cluster) -> None:
    c, ns = cluster, "gitops"
    c.kubectl("create", "namespace", ns)
    c.helm("install", "molstream", PREVIOUS, "--namespace", ns, "--no-hooks", timeout=180)
    # Without a cluster the lookup sees nothing: the README's value names 0.1.0's Service.
    rendered = c.helm("template", "molstream", CHART, "--namespace", ns,
                      "--set", "kafka.serviceName=molstream-kafka",
                      "--show-only", "charts/kafka/templates/statefulset.yaml").stdout
    applied = c.kubectl("apply", "--dry-run=server", "-f", "-", namespace=ns, input=rendered,
                        check=False)
    assert applied.returncode == 0, applied.stderr


def test_a_second_release_with_take_ownership_cannot_steal_the_crd(cluster: Cluster) -> None:
    c = cluster
    c.kubectl("delete", CRD, "--ignore-not-found")  # the test above's, from 0.1.0's crds/
    for ns in ("first", "second"):
        c.kubectl("create", "namespace", ns)
    c.helm("install", "molstream", CHART, "--namespace", "first", "--no-hooks", timeout=180)
    # The second release, following the README's upgrade line (crds.create left at true):
    second = c.helm("install", "molstream", CHART, "--namespace", "second", "--no-hooks",
                    "--take-ownership", timeout=180, check=False)
    assert second.returncode != 0
    assert ('CustomResourceDefinition ingestrequests.molstream.io belongs to release "molstream" '
            'in namespace "first": install or upgrade this release with --set '
            'crds.create=false') in second.stderr, second.stderr
    annotations = json.loads(c.kubectl("get", CRD, "-o", "json").stdout)["metadata"][
        "annotations"]
    assert annotations["meta.helm.sh/release-namespace"] == "first", annotations


def test_the_owning_release_upgrades_and_another_one_installs_without_the_crd(
    cluster: Cluster,
) -> None:
    c = cluster  # after the test above: the CRD belongs to molstream in "first"
    c.helm("upgrade", "molstream", CHART, "--namespace", "first", "--no-hooks",
           "--take-ownership", timeout=180)
    c.helm("install", "other", CHART, "--namespace", "second", "--no-hooks",
           "--set", "crds.create=false", timeout=180)
    annotations = json.loads(c.kubectl("get", CRD, "-o", "json").stdout)["metadata"][
        "annotations"]
    assert annotations["meta.helm.sh/release-namespace"] == "first", annotations


def test_a_first_release_with_crds_create_false_needs_the_crd(cluster: Cluster) -> None:
    """crds.create=false installs where another release owns the CRD (the test above); on a
    cluster without it the operator would watch a resource that does not exist: the install
    is refused, naming the fix. helm template (no cluster) still renders."""
    c = cluster
    c.kubectl("delete", CRD, "--ignore-not-found", "--wait=true")
    # The API server's discovery follows the deletion shortly after.
    c.kubectl("wait", "--for=delete", CRD, "--timeout=60s", check=False)
    c.kubectl("create", "namespace", "third")
    installed = c.helm("install", "third", CHART, "--namespace", "third", "--no-hooks",
                       "--set", "crds.create=false", timeout=180, check=False)
    assert installed.returncode != 0
    assert ("crds.create=false but the IngestRequest CRD is not installed: install the release "
            "that owns it first, or set crds.create=true") in installed.stderr, installed.stderr
    c.helm("template", "third", CHART, "--namespace", "third", "--set", "crds.create=false")
