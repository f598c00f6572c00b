"""`helm upgrade` from chart 0.1.0 (tests/e2e/charts/molstream-0.1.0.tgz, as released: its CRD in
crds/, which helm installs once and never upgrades) to the working tree's chart (the CRD a
template), the way the chart's README says, against a real kube-apiserver of the test's own:
the CRD is cluster-scoped, so this test must not change the one the other tests share.

- under 0.1.0's CRD, a new spec field (spec.fetcher.resources) is pruned by the API server (the
  control: why the CRD must be upgraded at all);
- a plain `helm upgrade` refuses to adopt the CRD that crds/ installed (no ownership metadata),
  `--take-ownership` adopts and upgrades it: the CRD then declares the field, an IngestRequest
  keeps it, and the IngestRequests made before are still there;
- `helm uninstall` leaves the CRD and the IngestRequests (helm.sh/resource-policy: keep), and
  installing the release again takes the kept CRD back;
- a second release in another namespace installs with crds.create=false;
- without --take-ownership (helm before 3.17), the ownership metadata put on the CRD by hand
  lets a plain upgrade adopt it.

No controller-manager runs: hooks are skipped (--no-hooks), as in test_chart_install.py."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chartlib import CHART
from molstream_dev.kube import REPO_ROOT, KubeAPIServer, MissingBinaryError
from molstream_dev.pytest_kube import Tool, _binary, _runner

PREVIOUS = REPO_ROOT / "tests" / "e2e" / "charts" / "molstream-0.1.0.tgz"
CRD = "crd/ingestrequests.molstream.io"
RELEASE = NAMESPACE = "molstream"
RESOURCES = {"requests": {"memory": "1Gi"}, "limits": {"memory": "4Gi", "cpu": "2"}}

pytestmark = [pytest.mark.kube, pytest.mark.helm]


class Cluster:
    """kubectl and helm bound to an API server of this module's own."""

    def __init__(self, server: KubeAPIServer, home: Path) -> None:
        env = dict(os.environ)
        env.update(KUBECONFIG=str(server.kubeconfig), HELM_CACHE_HOME=str(home / "cache"),
                   HELM_CONFIG_HOME=str(home / "config"), HELM_DATA_HOME=str(home / "data"))
        self.kubectl: Tool = _runner(_binary("kubectl"), env)
        self.helm: Tool = _runner(_binary("helm"), env)

    def ir(self, name: str, spec: dict[str, Any], *validate: str) -> Any:
        body = {"apiVersion": "molstream.io/v1alpha1", "kind": "IngestRequest",
                "metadata": {"name": name}, "spec": spec}
        return self.kubectl("create", *validate, "-f", "-", namespace=NAMESPACE,
                            input=yaml.safe_dump(body), check=False)

    def stored_spec(self, name: str) -> dict[str, Any]:
        out = self.kubectl("get", "ingestrequest", name, "-o", "json", namespace=NAMESPACE)
        return json.loads(out.stdout)["spec"]

    def crd(self) -> dict[str, Any]:
        return json.loads(self.kubectl("get", CRD, "-o", "json").stdout)


def _spec_properties(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    try:
        server = KubeAPIServer.start(tmp_path_factory.mktemp("kube-upgrade"))
    except MissingBinaryError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield Cluster(server, tmp_path_factory.mktemp("helm-upgrade"))
    finally:
        server.stop()


@pytest.fixture(scope="module")
def previous(cluster: Cluster) -> Cluster:
    """Chart 0.1.0 installed as release molstream, an IngestRequest made under its CRD with the
    new field (pruned)."""
    assert PREVIOUS.is_file(), f"{PREVIOUS} missing: the packaged previous chart"
    cluster.kubectl("create", "namespace", NAMESPACE)
    cluster.helm("install", RELEASE, PREVIOUS, "--namespace", NAMESPACE, "--no-hooks",
                 timeout=180)
    cluster.kubectl("wait", "--for=condition=Established", CRD, "--timeout=60s")
    # kubectl's default field validation (strict) would refuse the unknown field outright;
    # most clients (kopf, client libraries, helm) send none, and the API server drops it.
    made = cluster.ir("before", {"url": "https://example.org/a.csv",
                                 "fetcher": {"resources": RESOURCES}}, "--validate=warn")
    assert made.returncode == 0, made.stderr
    assert 'unknown field "spec.fetcher"' in made.stderr
    return cluster


def test_under_the_previous_crd_the_new_field_is_pruned(previous: Cluster) -> None:
    crd = previous.crd()
    assert "fetcher" not in _spec_properties(crd)
    # crds/ gave it no ownership metadata: no release owns it.
    assert "meta.helm.sh/release-name" not in (crd["metadata"].get("annotations") or {})
    assert "fetcher" not in previous.stored_spec("before")


@pytest.fixture(scope="module")
def upgraded(previous: Cluster) -> tuple[Cluster, str]:
    """`helm upgrade` as the README says; (cluster, the plain upgrade's error)."""
    # The chart's defaults, as the install's: an immutable field (a claim's size, a
    # StatefulSet's volumeClaimTemplates) whose default changed would fail here.
    args = ("upgrade", RELEASE, CHART, "--namespace", NAMESPACE, "--no-hooks")
    plain = previous.helm(*args, check=False, timeout=180)
    assert plain.returncode != 0
    previous.helm(*args, "--take-ownership", timeout=180)
    return previous, plain.stderr


def test_a_plain_upgrade_refuses_the_crd_it_does_not_own(upgraded: tuple[Cluster, str]) -> None:
    _, error = upgraded
    assert ('CustomResourceDefinition "ingestrequests.molstream.io" in namespace "" exists and '
            "cannot be imported into the current release") in error, error


def test_the_upgrade_applies_the_crd_and_the_new_field_is_kept(
    upgraded: tuple[Cluster, str],
) -> None:
    cluster, _ = upgraded
    crd = cluster.crd()
    annotations = crd["metadata"]["annotations"]
    assert annotations["meta.helm.sh/release-name"] == RELEASE
    assert annotations["meta.helm.sh/release-namespace"] == NAMESPACE
    assert annotations["helm.sh/resource-policy"] == "keep"
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert "resources" in _spec_properties(crd)["fetcher"]["properties"]
    cluster.kubectl("wait", "--for=condition=Established", CRD, "--timeout=60s")
    # kubectl's strict validation now accepts the field, and the API server keeps it.
    made = cluster.ir("after", {"url": "https://example.org/a.csv",
                                "fetcher": {"resources": RESOURCES}})
    assert made.returncode == 0, made.stderr
    assert cluster.stored_spec("after")["fetcher"] == {"resources": RESOURCES}
    # What was made before is still there (its pruned field does not come back).
    assert "fetcher" not in cluster.stored_spec("before")
    (listed,) = json.loads(cluster.helm("list", "--namespace", NAMESPACE, "-o", "json").stdout)
    # (the refused plain upgrade left no revision behind)
    assert (listed["chart"], listed["revision"], listed["status"]) == (
        "molstream-0.2.0", "2", "deployed"), listed


def test_uninstall_keeps_the_crd_and_a_reinstall_takes_it_back(
    upgraded: tuple[Cluster, str],
) -> None:
    cluster, _ = upgraded
    cluster.helm("uninstall", RELEASE, "--namespace", NAMESPACE, timeout=180)
    assert cluster.crd()["metadata"]["name"] == "ingestrequests.molstream.io"
    assert cluster.stored_spec("after")["fetcher"] == {"resources": RESOURCES}
    # The kept CRD still names the release: the same release takes it back without a flag.
    cluster.helm("install", RELEASE, CHART, "--namespace", NAMESPACE, "--no-hooks",
                 timeout=180)
    manifest = cluster.helm("get", "manifest", RELEASE, "--namespace", NAMESPACE).stdout
    assert "kind: CustomResourceDefinition" in manifest


def test_a_second_release_leaves_the_crd_to_the_first(
    upgraded: tuple[Cluster, str],
) -> None:
    cluster, _ = upgraded
    other = "molstream-b"
    cluster.kubectl("create", "namespace", other)
    args = ("install", other, CHART, "--namespace", other, "--no-hooks")
    refused = cluster.helm(*args, check=False, timeout=180)
    assert refused.returncode != 0
    # templates/crd.yaml's own check (before helm's "cannot be imported"), naming the owner.
    assert "CustomResourceDefinition ingestrequests.molstream.io belongs to release" in \
        refused.stderr and "--set crds.create=false" in refused.stderr, refused.stderr
    cluster.helm(*args, "--set", "crds.create=false", timeout=180)
    owner = cluster.crd()["metadata"]["annotations"]["meta.helm.sh/release-namespace"]
    assert owner != other


def test_an_older_helm_upgrades_once_the_crd_is_given_its_owner_by_hand(
    upgraded: tuple[Cluster, str],
) -> None:
    """The README's way without --take-ownership (helm before 3.17): label and annotate."""
    cluster, _ = upgraded
    for release in (RELEASE, "molstream-b"):
        cluster.helm("uninstall", release, "--namespace", release, check=False, timeout=180)
    cluster.kubectl("delete", CRD, "--timeout=60s")  # kept by the uninstalls
    old = "old-release"
    cluster.kubectl("create", "namespace", old)
    cluster.helm("install", old, PREVIOUS, "--namespace", old, "--no-hooks", timeout=180)
    assert "fetcher" not in _spec_properties(cluster.crd())
    name = "ingestrequests.molstream.io"
    cluster.kubectl("label", "crd", name, "app.kubernetes.io/managed-by=Helm")
    cluster.kubectl("annotate", "crd", name, f"meta.helm.sh/release-name={old}",
                    f"meta.helm.sh/release-namespace={old}")
    cluster.helm("upgrade", old, CHART, "--namespace", old, "--no-hooks", timeout=180)
    assert "resources" in _spec_properties(cluster.crd())["fetcher"]["properties"]
