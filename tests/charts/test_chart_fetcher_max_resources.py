"""fetcher.maxResources: the chart hands the administrator's cap on an IngestRequest's
spec.fetcher.resources to the operator (MOLSTREAM_FETCHER_MAX_RESOURCES), which refuses more."""

from __future__ import annotations

from pathlib import Path

import pytest
from chartlib import Helm, Render, env_of, find, operator_built_job, pod_spec, refused
from molstream_operator.urls import InvalidSpecError

URL = "https://files.example.org/activities.csv.gz"


def _caps(objects: list) -> str:
    operator = find(objects, "Deployment", "molstream-operator")
    return env_of(pod_spec(operator)["containers"][0])["MOLSTREAM_FETCHER_MAX_RESOURCES"]


def test_the_default_caps_reach_the_operator(render: Render, tmp_path: Path) -> None:
    objects = render()
    assert _caps(objects) == "cpu=4,ephemeral-storage=10Gi,memory=8Gi"
    big = {"url": URL, "fetcher": {"resources": {"limits": {"memory": "16Gi"}}}}
    with pytest.raises(InvalidSpecError) as info:
        operator_built_job(objects, tmp_path, big)
    assert info.value.field == "spec.fetcher.resources.limits.memory"
    assert "8Gi (the chart's fetcher.maxResources.memory)" in str(info.value)
    ok = {"url": URL, "fetcher": {"resources": {"limits": {"memory": "8Gi", "cpu": "4"}}}}
    (container,) = operator_built_job(objects, tmp_path, ok)["spec"]["template"]["spec"][
        "containers"]
    assert container["resources"]["limits"] == {"cpu": "4", "memory": "8Gi"}


def test_an_empty_key_lifts_its_cap(render: Render, tmp_path: Path) -> None:
    objects = render(set={"fetcher.maxResources.memory": "", "fetcher.maxResources.cpu": "8"})
    assert _caps(objects) == "cpu=8,ephemeral-storage=10Gi"
    big = {"url": URL, "fetcher": {"resources": {"limits": {"memory": "64Gi"}}}}
    operator_built_job(objects, tmp_path, big)


def test_a_cap_that_is_no_quantity_is_refused(helm_offline: Helm) -> None:
    no_quantity = refused(helm_offline, {"fetcher.maxResources.cpu": "lots"})
    assert "/fetcher/maxResources/cpu" in no_quantity
    assert "gpu" in refused(helm_offline, {"fetcher.maxResources.gpu": "1"})
