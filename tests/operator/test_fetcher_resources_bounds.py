"""spec.fetcher.resources at its bounds: a value the CRD admits ends either in a fetcher Job
the API server takes or in the IngestRequest Failed with the field named (InvalidSpecError),
never in another exception inside the operator's handler (decimal's InvalidOperation once
retried the reconcile forever); and the administrator's cap (the chart's
fetcher.maxResources, MOLSTREAM_FETCHER_MAX_RESOURCES) on what an IngestRequest may ask."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from molstream_operator.config import FetcherTemplate, OperatorConfig
from molstream_operator.manifests import build_job
from molstream_operator.models import IngestRequestRef, IngestRequestSpec, parse_quantity
from molstream_operator.urls import InvalidSpecError
from operator_harness import Namespace, ingestrequest

REF = IngestRequestRef(namespace="chem", name="chembl", uid="uid-1", generation=1)
CHART = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
TEMPLATE = FetcherTemplate.from_mapping({"image": "molstream:dev", "resources": CHART})
CONFIG = OperatorConfig(kafka_bootstrap="kafka:9092", topic_prefix="molstream", fetcher=TEMPLATE)
CAPPED = OperatorConfig(
    kafka_bootstrap="kafka:9092", topic_prefix="molstream", fetcher=TEMPLATE,
    fetcher_max_resources=(("cpu", "4"), ("memory", "8Gi")))
URL = "https://files.example.org/activities.csv.gz"

# Once all admitted by the CRD; the first two are no longer (a two-digit exponent at most).
ODD = ["1e9999999", "1e-9999999", "99999999999999999999999999999Ei", "1e99", "1e-99", "8Ei"]
# Admitted by the CRD, refused by the operator (1.0e+99, not 1e99: PyYAML writes that one
# unquoted, and kubectl reads a number).
ADMITTED = ["99999999999999999999999999999Ei", "1.0e+99", "1.0e-99"]


def _resources(manifest: dict[str, Any]) -> dict[str, Any]:
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    return container["resources"]


@pytest.mark.parametrize("quantity", ODD)
def test_an_odd_quantity_never_crashes_the_operator(quantity: str) -> None:
    with pytest.raises(InvalidSpecError) as info:
        spec = IngestRequestSpec.parse(
            {"url": URL, "fetcher": {"resources": {"requests": {"cpu": quantity}}}})
        build_job(REF, spec, CONFIG, run=1)
    assert info.value.field == "spec.fetcher.resources.requests.cpu"


@pytest.mark.parametrize(("quantity", "value"), [
    ("1Ei", 2**60), ("7Ei", 7 * 2**60), ("1E", 10**18), ("9e18", 9 * 10**18), ("1e-18", "1e-18"),
])
def test_the_e_suffixes_are_suffixes_not_exponents(quantity: str, value: Any) -> None:
    assert parse_quantity(quantity) == Decimal(value)


@pytest.mark.parametrize("quantity", ["1e19", "1e-19", "8Ei", "10E", "1e1.5", "1e", "Ei"])
def test_out_of_range_quantities_are_a_value_error(quantity: str) -> None:
    with pytest.raises(ValueError, match="quantity|exponent|2\\^63-1"):
        parse_quantity(quantity)


def test_the_administrator_s_cap_refuses_more_naming_the_field_and_the_cap() -> None:
    for section in ("requests", "limits"):
        spec = IngestRequestSpec.parse(
            {"url": URL, "fetcher": {"resources": {section: {"memory": "9Gi"}}}})
        with pytest.raises(InvalidSpecError) as info:
            build_job(REF, spec, CAPPED, run=1)
        assert info.value.field == f"spec.fetcher.resources.{section}.memory"
        assert "9Gi is more than the administrator allows, 8Gi (the chart's " \
            "fetcher.maxResources.memory)" in str(info.value)
    # At the cap, and a key without one: taken.
    spec = IngestRequestSpec.parse({"url": URL, "fetcher": {"resources": {
        "requests": {"cpu": "4", "ephemeral-storage": "500Gi"},
        "limits": {"cpu": "4000m", "memory": "8Gi"}}}})
    assert _resources(build_job(REF, spec, CAPPED, run=1))["limits"] == {
        "cpu": "4000m", "memory": "8Gi"}


def test_the_cap_comes_from_the_environment() -> None:
    config = OperatorConfig.from_env(
        {"MOLSTREAM_FETCHER_MAX_RESOURCES": "cpu=4, memory=8Gi,ephemeral-storage="})
    assert config.fetcher_max_resources == (("cpu", "4"), ("memory", "8Gi"))
    assert OperatorConfig.from_env({}).fetcher_max_resources == ()
    for bad, needle in (("gpu=1", "'gpu=1' is not key=quantity"), ("memory", "key=quantity"),
                        ("memory=lots", "memory: 'lots' is not a quantity")):
        with pytest.raises(ValueError, match=needle):
            OperatorConfig.from_env({"MOLSTREAM_FETCHER_MAX_RESOURCES": bad})


@pytest.mark.kube
@pytest.mark.parametrize("quantity", ADMITTED)
def test_such_a_quantity_fails_the_ingestrequest_with_its_field(
    ns: Namespace, start_operator: Any, quantity: str
) -> None:
    op = start_operator()
    ns.context = op.tail
    # A limit: the operator compares it with the template's request (100m).
    ns.apply(ingestrequest("odd", url=URL, credentialsSecret=None,
                           fetcher={"resources": {"limits": {"cpu": quantity}}}))
    assert ns.ir("odd")["spec"]["fetcher"]["resources"]["limits"]["cpu"] == quantity
    status = ns.wait_phase("odd", "Failed", timeout=30)
    assert "spec.fetcher.resources.limits.cpu" in status.get("message", ""), status


@pytest.mark.kube
@pytest.mark.parametrize("quantity", ["1e9999999", "1e-9999999", "1e1.5", "1" * 65])
def test_the_crd_refuses_a_long_or_fractional_exponent(
    ns: Namespace, kubectl: Any, quantity: str
) -> None:
    manifest = ingestrequest("odd-crd", fetcher={"resources": {"limits": {"cpu": quantity}}})
    # JSON: its strings stay strings (YAML would read 1e-9999999 as the number 0).
    result = kubectl(
        "apply", "-f", "-", namespace=ns.name, input=json.dumps(manifest), check=False)
    assert result.returncode != 0
    assert "spec.fetcher.resources.limits.cpu" in result.stderr, result.stderr
    assert ns.admin.get_ingestrequest(ns.name, "odd-crd") is None


@pytest.mark.kube
def test_above_the_cap_the_ingestrequest_fails_naming_the_cap(
    ns: Namespace, start_operator: Any
) -> None:
    op = start_operator(extra_env={"MOLSTREAM_FETCHER_MAX_RESOURCES": "memory=4Gi"})
    ns.context = op.tail
    ns.apply(ingestrequest("greedy", url=URL, credentialsSecret=None,
                           fetcher={"resources": {"limits": {"memory": "6Gi"}}}))
    status = ns.wait_phase("greedy", "Failed", timeout=30)
    assert "spec.fetcher.resources.limits.memory" in status.get("message", ""), status
    assert "fetcher.maxResources.memory" in status["message"], status
    assert ns.jobs() == []
