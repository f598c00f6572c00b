"""Credentials only where the requester could read them, and never in the clear unless asked:
the opt-in label of a credentialsSecret, plain ftp:// and http:// refused unless both the
IngestRequest and the operator allow them, the fetcher's address policy passed on, and URL
secrets kept out of the Job's arguments, the status, the Events and the operator's log."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from molstream_operator.config import FetcherTemplate, OperatorConfig
from molstream_operator.manifests import build_cronjob, build_job
from molstream_operator.models import (
    SOURCE_CREDENTIALS_LABEL,
    IngestRequestRef,
    IngestRequestSpec,
    check_credentials_policy,
)
from molstream_operator.urls import InvalidSpecError, redact
from operator_harness import Namespace, ingestrequest, secret

REF = IngestRequestRef(namespace="chem", name="chembl", uid="uid-1", generation=1)
TEMPLATE = FetcherTemplate.from_mapping({"image": "molstream:dev"})
LABELLED = {SOURCE_CREDENTIALS_LABEL: "true"}
PRESIGNED = ("https://bucket.s3.amazonaws.com/activities.csv.gz?X-Amz-Algorithm=AWS4-HMAC-SHA256"
             "&X-Amz-Credential=AKIAEXAMPLE%2F20240101&X-Amz-Signature=deadbeefcafe")


def _spec(url: str = "ftps://h/a.csv", **spec: Any) -> IngestRequestSpec:
    return IngestRequestSpec.parse({"url": url, "credentialsSecret": {"name": "creds"}, **spec})


def _check(spec: IngestRequestSpec, labels: dict | None = None, *, allow: bool = False) -> None:
    check_credentials_policy(spec, allow_insecure=allow,
                             secret_labels=lambda name: LABELLED if labels is None else labels)


def _env(job: dict[str, Any]) -> dict[str, Any]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_a_secret_needs_the_opt_in_label() -> None:
    _check(_spec())  # labelled: fine
    for labels in ({}, {SOURCE_CREDENTIALS_LABEL: "yes"}, {"app": "cnpg"}):
        with pytest.raises(InvalidSpecError) as refused:
            _check(_spec(), labels)
        assert refused.value.field == "spec.credentialsSecret.name"
        assert ("Secret 'creds' is not labelled molstream.io/source-credentials: \"true\""
                in str(refused.value))
    with pytest.raises(InvalidSpecError, match="Secret 'creds' not found"):
        check_credentials_policy(_spec(), allow_insecure=False, secret_labels=lambda _: None)

    def forbidden(name: str) -> None:
        raise PermissionError(name)

    with pytest.raises(InvalidSpecError, match="may not read the labels of Secret 'creds'"):
        check_credentials_policy(_spec(), allow_insecure=False, secret_labels=forbidden)
    # no Secret named, nothing to check (and no Secret read)
    check_credentials_policy(IngestRequestSpec.parse({"url": "ftp://h/a.csv"}),
                             allow_insecure=False, secret_labels=forbidden)


def test_plain_ftp_and_http_need_both_the_request_and_the_operator() -> None:
    for url in ("ftp://h/a.csv", "http://h/a.csv"):
        for asked, allowed in ((False, False), (True, False), (False, True)):
            spec = _spec(url, allowInsecureCredentials=asked)
            with pytest.raises(InvalidSpecError) as refused:
                _check(spec, allow=allowed)
            message = str(refused.value)
            assert message.startswith("spec.credentialsSecret: credentials are never sent over "
                                      f"plain {url.split(':')[0]}://")
            assert ("spec.allowInsecureCredentials: true" in message) is not asked
            assert ("MOLSTREAM_ALLOW_INSECURE_CREDENTIALS" in message) is not allowed
        _check(_spec(url, allowInsecureCredentials=True), allow=True)
    for url in ("ftps://h/a.csv", "https://h/a.csv"):
        _check(_spec(url))
    with pytest.raises(InvalidSpecError, match="spec.allowInsecureCredentials: must be true"):
        _spec(allowInsecureCredentials="yes")


def test_the_job_gets_the_policy_and_the_url_outside_its_arguments() -> None:
    config = OperatorConfig.from_env({
        "MOLSTREAM_ALLOWED_NETWORKS": "10.0.0.0/8, fd00::/8",
        "MOLSTREAM_INTERNAL_HOSTS": "molstream-ftp,*.mirror.svc",
        "MOLSTREAM_DENIED_NETWORKS": "10.96.0.0/12",
        "MOLSTREAM_ALLOW_INSECURE_CREDENTIALS": "true",
    })
    config = dataclasses.replace(config, fetcher=TEMPLATE)
    job = build_job(REF, _spec("ftp://molstream-ftp/a.csv", allowInsecureCredentials=True),
                    config, run=1)
    env = _env(job)
    assert env["MOLSTREAM_ALLOWED_NETWORKS"] == "10.0.0.0/8,fd00::/8"
    assert env["MOLSTREAM_INTERNAL_HOSTS"] == "molstream-ftp,*.mirror.svc"
    assert env["MOLSTREAM_DENIED_NETWORKS"] == "10.96.0.0/12"
    assert env["MOLSTREAM_ALLOW_INSECURE_CREDENTIALS"] == "true"
    # one side only: the fetcher is not told
    for spec, cfg in ((_spec("ftp://h/a.csv"), config),
                      (_spec("ftp://h/a.csv", allowInsecureCredentials=True),
                       OperatorConfig(fetcher=TEMPLATE))):
        assert "MOLSTREAM_ALLOW_INSECURE_CREDENTIALS" not in _env(build_job(REF, spec, cfg, run=1))
    strict = _env(build_job(REF, _spec(), OperatorConfig(fetcher=TEMPLATE), run=1))
    assert not {"MOLSTREAM_ALLOWED_NETWORKS", "MOLSTREAM_INTERNAL_HOSTS",
                "MOLSTREAM_DENIED_NETWORKS"} & set(strict)
    # a presigned URL: in the environment, never in the arguments
    for built in (build_job(REF, _spec(PRESIGNED), config, run=1),
                  build_cronjob(REF, _spec(PRESIGNED, schedule="@daily"), config)
                  ["spec"]["jobTemplate"]):
        (container,) = built["spec"]["template"]["spec"]["containers"]
        assert "deadbeefcafe" not in json.dumps(container["args"])
        assert {"name": "MOLSTREAM_SOURCE_URL", "value": PRESIGNED} in container["env"]
    # the fetcher template cannot replace them
    loose = OperatorConfig(fetcher=FetcherTemplate.from_mapping({"env": [
        {"name": "MOLSTREAM_ALLOWED_NETWORKS", "value": "0.0.0.0/0"},
        {"name": "MOLSTREAM_ALLOW_INSECURE_CREDENTIALS", "value": "true"},
        {"name": "MOLSTREAM_SOURCE_URL", "value": "http://169.254.169.254/"}]}))
    env = _env(build_job(REF, _spec(), loose, run=1))
    assert "MOLSTREAM_ALLOWED_NETWORKS" not in env
    assert "MOLSTREAM_ALLOW_INSECURE_CREDENTIALS" not in env
    assert env["MOLSTREAM_SOURCE_URL"] == "ftps://h/a.csv"


def test_bad_operator_settings_stop_it_at_start() -> None:
    with pytest.raises(ValueError, match="MOLSTREAM_DENIED_NETWORKS: 'pods' is not a network"):
        OperatorConfig.from_env({"MOLSTREAM_DENIED_NETWORKS": "pods"})
    with pytest.raises(ValueError, match="MOLSTREAM_ALLOW_INSECURE_CREDENTIALS='maybe'"):
        OperatorConfig.from_env({"MOLSTREAM_ALLOW_INSECURE_CREDENTIALS": "maybe"})
    assert OperatorConfig.from_env({}).allow_insecure_credentials is False


def test_the_operator_redacts_url_secrets_in_free_text() -> None:
    shown = redact(f"fetching {PRESIGNED}: HTTP 403 Forbidden")
    assert "deadbeefcafe" not in shown and "AKIAEXAMPLE" not in shown
    assert "X-Amz-Signature=REDACTED" in shown and "X-Amz-Algorithm=AWS4-HMAC-SHA256" in shown


@pytest.mark.kube
def test_an_unlabelled_secret_is_refused(ns: Namespace, start_operator: Any) -> None:
    """A CloudNativePG-like Secret (username/password keys, no opt-in label) named by an
    IngestRequest: Failed, naming the Secret and the label; no Job. Labelled, the run starts."""
    op = start_operator()
    ns.context = op.tail
    app = secret("db-superuser-pw", name="cluster-superuser")
    app["metadata"]["labels"] = {"cnpg.io/cluster": "cluster"}
    ns.apply([app, ingestrequest("steal", url="ftps://molstream-ftp:2121/a.csv",
                                 credentialsSecret={"name": "cluster-superuser"})])
    status = ns.wait_phase("steal", "Failed")
    assert status["message"] == (
        "invalid spec: spec.credentialsSecret.name: Secret 'cluster-superuser' is not labelled "
        "molstream.io/source-credentials: \"true\": only a Secret meant as source credentials "
        "may be named (someone who may read it labels it: kubectl label secret "
        "cluster-superuser molstream.io/source-credentials=true)")
    assert ns.condition("steal", "Failed")["reason"] == "InvalidSpec"
    assert ns.jobs() == []
    assert "db-superuser-pw" not in op.log() + json.dumps(ns.events())

    # the Secret's owner opts it in; a change of the IngestRequest starts the run
    app["metadata"]["labels"][SOURCE_CREDENTIALS_LABEL] = "true"
    ns.apply([app, ingestrequest("steal", url="ftps://molstream-ftp:2121/a.csv",
                                 credentialsSecret={"name": "cluster-superuser"}, batchSize=100)])
    ns.wait_jobs(1)
    ns.wait_phase("steal", "Pending")


@pytest.mark.kube
def test_plain_ftp_credentials_are_refused_unless_both_allow(
    ns: Namespace, start_operator: Any
) -> None:
    op = start_operator(extra_env={"MOLSTREAM_ALLOW_INSECURE_CREDENTIALS": "false"})
    ns.context = op.tail
    ns.apply([secret("pw"), ingestrequest("plain")])  # asks for it; the operator says no
    status = ns.wait_phase("plain", "Failed")
    assert status["message"].startswith(
        "invalid spec: spec.credentialsSecret: credentials are never sent over plain ftp://")
    assert "MOLSTREAM_ALLOW_INSECURE_CREDENTIALS=true" in status["message"]
    assert ns.jobs() == []


@pytest.mark.kube
def test_url_secrets_stay_out_of_args_status_events_and_logs(
    ns: Namespace, start_operator: Any
) -> None:
    op = start_operator()
    ns.context = op.tail
    url = ("https://mirror.example.org/activities.csv.gz?X-Amz-Credential=AKIAEXAMPLE"
           "&X-Amz-Signature=deadbeefcafe&token=t0ps3cret")
    ns.apply([secret("pw"), ingestrequest("presigned", url=url, allowInsecureCredentials=None)])
    (job,) = ns.wait_jobs(1)
    ns.wait_phase("presigned", "Pending")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert not any("deadbeefcafe" in a or "t0ps3cret" in a for a in container["args"])
    shown = json.dumps(ns.status("presigned")) + json.dumps(ns.events()) + op.log()
    for secret_value in ("deadbeefcafe", "t0ps3cret", "AKIAEXAMPLE"):
        assert secret_value not in shown
