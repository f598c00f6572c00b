"""spec.fetcher.resources: requests and limits of one IngestRequest's fetcher, over the chart's.

Checked by the API server's schema (the keys cpu, memory and ephemeral-storage, quantities),
kept as given (a field the stored CRD did not declare would be pruned silently), merged key by
key over the fetcher template's resources by the operator, and a request above its limit
refused with the field named."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import yaml
from molstream_operator.config import FetcherTemplate, OperatorConfig
from molstream_operator.manifests import build_cronjob, build_job
from molstream_operator.models import IngestRequestRef, IngestRequestSpec, parse_quantity
from molstream_operator.urls import InvalidSpecError
from operator_harness import Namespace, ingestrequest

REF = IngestRequestRef(namespace="chem", name="chembl", uid="uid-1", generation=1)
CHART = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
CONFIG = OperatorConfig(
    kafka_bootstrap="kafka:9092", topic_prefix="molstream",
    fetcher=FetcherTemplate.from_mapping({"image": "molstream:dev", "resources": CHART}))
URL = "https://files.example.org/activities.csv.gz"
BIGGER = {"requests": {"memory": "1Gi", "ephemeral-storage": "10Gi"},
          "limits": {"memory": "6Gi", "cpu": 3}}


def _resources(manifest: dict[str, Any]) -> dict[str, Any]:
    spec = manifest["spec"]
    if "jobTemplate" in spec:  # a CronJob
        spec = spec["jobTemplate"]["spec"]
    (container,) = spec["template"]["spec"]["containers"]
    return container["resources"]


def test_the_request_s_resources_go_over_the_chart_s_key_by_key() -> None:
    spec = IngestRequestSpec.parse({"url": URL, "fetcher": {"resources": BIGGER}})
    merged = {"requests": {"cpu": "250m", "memory": "1Gi", "ephemeral-storage": "10Gi"},
              "limits": {"cpu": "3", "memory": "6Gi"}}
    assert _resources(build_job(REF, spec, CONFIG, run=1)) == merged
    scheduled = IngestRequestSpec.parse(
        {"url": URL, "schedule": "@daily", "fetcher": {"resources": BIGGER}})
    assert _resources(build_cronjob(REF, scheduled, CONFIG)) == merged
    # Without the field: the chart's, untouched (and the template's own copy too).
    plain = IngestRequestSpec.parse({"url": URL})
    assert _resources(build_job(REF, plain, CONFIG, run=1)) == CHART
    assert CONFIG.fetcher.resources == CHART


@pytest.mark.parametrize(("quantity", "value"), [
    ("500m", "0.5"), ("2", "2"), ("1.5Gi", str(3 * 2**29)), ("1e3", "1000"), ("1E3", "1000"),
    ("2E", str(2 * 10**18)), ("100n", "0.0000001"), (".5k", "500"),
])
def test_quantities_compare_as_kubernetes_reads_them(quantity: str, value: str) -> None:
    assert parse_quantity(quantity) == Decimal(value)


@pytest.mark.parametrize(("resources", "field", "needle"), [
    ({"requests": {"memory": "3Gi"}}, "spec.fetcher.resources.requests.memory",
     "3Gi is more than the fetcher's limit 2Gi (the chart's fetcher.resources.limits.memory): "
     "raise spec.fetcher.resources.limits.memory too"),
    ({"limits": {"cpu": "100m"}}, "spec.fetcher.resources.limits.cpu",
     "100m is less than the fetcher's request 250m (the chart's fetcher.resources.requests.cpu)"),
    ({"requests": {"cpu": "4"}, "limits": {"cpu": "3"}}, "spec.fetcher.resources.requests.cpu",
     "4 is more than spec.fetcher.resources.limits.cpu 3"),
    ({"requests": {"gpu": "1"}}, "spec.fetcher.resources.requests",
     "the keys are cpu, memory, ephemeral-storage"),
    ({"limits": {"memory": "lots"}}, "spec.fetcher.resources.limits.memory", "not a quantity"),
    ({"limits": {"memory": -1}}, "spec.fetcher.resources.limits.memory", "not a quantity"),
    ({"claims": []}, "spec.fetcher.resources", "requests and limits only"),
])
def test_the_operator_refuses_bad_resources_naming_the_field(
    resources: dict[str, Any], field: str, needle: str
) -> None:
    with pytest.raises(InvalidSpecError) as info:
        spec = IngestRequestSpec.parse({"url": URL, "fetcher": {"resources": resources}})
        build_job(REF, spec, CONFIG, run=1)
    assert info.value.field == field
    assert needle in str(info.value)


@pytest.mark.kube
@pytest.mark.parametrize(("resources", "field", "needle"), [
    ({"requests": {"gpu": "1"}}, "spec.fetcher.resources.requests",
     "the keys are cpu, memory and ephemeral-storage"),
    ({"limits": {"memory": "lots"}}, "spec.fetcher.resources.limits.memory",
     "should match"),
    ({"limits": {"memory": "-1Gi"}}, "spec.fetcher.resources.limits.memory", "should match"),
    ({"limits": {"cpu": -1}}, "spec.fetcher.resources.limits.cpu",
     "should be greater than or equal to 0"),
])
def test_bad_resources_are_refused_by_the_api_server(
    ns: Namespace, kubectl: Any, resources: dict[str, Any], field: str, needle: str
) -> None:
    manifest = ingestrequest("bad-resources", fetcher={"resources": resources})
    result = kubectl(
        "apply", "-f", "-", namespace=ns.name, input=yaml.safe_dump(manifest), check=False
    )
    assert result.returncode != 0
    assert field in result.stderr and needle in result.stderr, result.stderr
    assert ns.admin.get_ingestrequest(ns.name, "bad-resources") is None


@pytest.mark.kube
def test_the_resources_reach_the_fetcher_job(ns: Namespace, start_operator: Any) -> None:
    op = start_operator()
    ns.context = op.tail
    ns.apply(ingestrequest("big", url=URL, credentialsSecret=None,
                           fetcher={"resources": BIGGER}))
    # Stored as given: the CRD declares the field (nothing pruned).
    assert ns.ir("big")["spec"]["fetcher"] == {"resources": BIGGER}
    (job,) = ns.wait_jobs(1)
    # Over the harness's template, which leaves resources to the operator's defaults.
    assert _resources(job) == {
        "requests": {"cpu": "100m", "memory": "1Gi", "ephemeral-storage": "10Gi"},
        "limits": {"cpu": "3", "memory": "6Gi"},
    }


@pytest.mark.kube
def test_a_request_above_its_limit_fails_the_ingestrequest(
    ns: Namespace, start_operator: Any
) -> None:
    op = start_operator()
    ns.context = op.tail
    ns.apply(ingestrequest("too-much", url=URL, credentialsSecret=None,
                           fetcher={"resources": {"requests": {"memory": "4Gi"}}}))
    status = ns.wait_phase("too-much", "Failed")
    assert status["message"].startswith("invalid spec: spec.fetcher.resources.requests.memory: "
                                        "4Gi is more than the fetcher's limit 1Gi"), status
    assert ns.jobs() == []
