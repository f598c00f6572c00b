"""Job/CronJob manifests, names, ingest ids, spec parsing and the fetcher template (unit)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from molstream_operator.config import FetcherTemplate, OperatorConfig
from molstream_operator.manifests import (
    LABEL_IR,
    build_cronjob,
    build_job,
    cronjob_name,
    ingest_id,
    job_name,
    label_value,
    parse_ingest_id,
    run_ingest_id,
)
from molstream_operator.models import IngestRequestRef, IngestRequestSpec, Mode
from molstream_operator.urls import InvalidSpecError

REF = IngestRequestRef(namespace="chem", name="chembl-34", uid="uid-1", generation=1)
CONFIG = OperatorConfig(
    kafka_bootstrap="kafka:9092",
    topic_prefix="molstream",
    fetcher=FetcherTemplate.from_mapping(
        {
            "image": "registry.example/molstream:1.2.3",
            "serviceAccountName": "molstream-fetcher",
            "env": [
                {"name": "MOLSTREAM_LOG_FORMAT", "value": "json"},
                {"name": "MOLSTREAM_SOURCE_PASSWORD", "value": "must-not-override"},
            ],
        }
    ),
)


def _spec(**overrides: object) -> IngestRequestSpec:
    raw = {
        "url": "ftp://molstream-ftp:2121/activities.csv.gz",
        "credentialsSecret": {"name": "ftp-creds"},
        "batchSize": 2000,
        "mode": "insertOnly",
        **overrides,
    }
    return IngestRequestSpec.parse(raw)


def _container(pod_spec: dict) -> dict:
    (container,) = pod_spec["containers"]
    return container


def _env(container: dict) -> dict[str, dict]:
    return {var["name"]: var for var in container["env"]}


def test_job_manifest() -> None:
    job = build_job(REF, _spec(), CONFIG, run=3)
    meta = job["metadata"]
    assert meta["name"] == "chembl-34-run-3"
    assert meta["namespace"] == "chem"
    assert meta["labels"][LABEL_IR] == "chembl-34"
    assert meta["labels"]["app.kubernetes.io/component"] == "fetcher"
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "molstream-operator"
    assert meta["annotations"]["molstream.io/ingest-id"] == "chem.chembl-34.3-uid-1"
    (owner,) = meta["ownerReferences"]
    assert owner == {
        "apiVersion": "molstream.io/v1alpha1",
        "kind": "IngestRequest",
        "name": "chembl-34",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    spec = job["spec"]
    assert spec["backoffLimit"] == 2
    assert spec["activeDeadlineSeconds"] == 3600
    assert spec["suspend"] is False
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "molstream-fetcher"
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = _container(pod)
    assert container["image"] == "registry.example/molstream:1.2.3"
    assert container["command"] == ["molstream"]
    assert container["args"] == [  # the URL in the environment (MOLSTREAM_SOURCE_URL)
        "fetch",
        "--ingest-id",
        "chem.chembl-34.3-uid-1",
        "--batch-size",
        "2000",
        "--mode",
        "insert-only",
    ]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = _env(container)
    assert env["MOLSTREAM_SOURCE_URL"]["value"] == "ftp://molstream-ftp:2121/activities.csv.gz"
    assert env["MOLSTREAM_INGEST_ID"]["value"] == "chem.chembl-34.3-uid-1"
    assert env["MOLSTREAM_KAFKA_BOOTSTRAP"]["value"] == "kafka:9092"
    assert env["MOLSTREAM_LOG_FORMAT"]["value"] == "json"
    for var, key in (
        ("MOLSTREAM_SOURCE_USERNAME", "username"),
        ("MOLSTREAM_SOURCE_PASSWORD", "password"),
    ):
        assert env[var] == {
            "name": var,
            "valueFrom": {"secretKeyRef": {"name": "ftp-creds", "key": key, "optional": False}},
        }
    # the template cannot replace the operator's own variables
    assert "must-not-override" not in json.dumps(job)
    assert [v["name"] for v in container["env"]].count("MOLSTREAM_SOURCE_PASSWORD") == 1


def test_job_without_secret_has_no_credentials_env() -> None:
    job = build_job(REF, _spec(credentialsSecret=None), CONFIG, run=1)
    env = _env(_container(job["spec"]["template"]["spec"]))
    assert "MOLSTREAM_SOURCE_USERNAME" not in env and "MOLSTREAM_SOURCE_PASSWORD" not in env


def test_fetcher_serves_metrics_only_when_configured() -> None:
    for job in (
        build_job(REF, _spec(), CONFIG, run=1),
        build_cronjob(REF, _spec(schedule="0 3 * * *"), CONFIG)["spec"]["jobTemplate"],
    ):
        container = _container(job["spec"]["template"]["spec"])
        assert "ports" not in container
        assert not {name for name in _env(container) if "METRICS" in name}

    template = dataclasses.replace(
        CONFIG.fetcher, env=[*CONFIG.fetcher.env, {"name": "MOLSTREAM_METRICS_PORT", "value": "1"}]
    )
    config = dataclasses.replace(
        CONFIG, fetcher=template, fetcher_metrics_port=9464, fetcher_metrics_linger_s=45
    )
    for job in (
        build_job(REF, _spec(), config, run=1),
        build_cronjob(REF, _spec(schedule="0 3 * * *"), config)["spec"]["jobTemplate"],
    ):
        container = _container(job["spec"]["template"]["spec"])
        # The named port a PodMonitor scrapes, and the variables that make the fetcher serve it.
        assert container["ports"] == [{"name": "metrics", "containerPort": 9464, "protocol": "TCP"}]
        env = _env(container)
        assert env["MOLSTREAM_METRICS_PORT"]["value"] == "9464"  # not the template's
        assert env["MOLSTREAM_METRICS_LINGER_S"]["value"] == "45"
        assert [v["name"] for v in container["env"]].count("MOLSTREAM_METRICS_PORT") == 1


def test_dollar_in_url_is_escaped_for_kubernetes_expansion() -> None:
    job = build_job(REF, _spec(url="http://h/a$(HOME).csv"), CONFIG, run=1)
    env = _env(_container(job["spec"]["template"]["spec"]))
    assert env["MOLSTREAM_SOURCE_URL"]["value"] == "http://h/a$$(HOME).csv"


def test_suspend_creates_a_suspended_job() -> None:
    assert build_job(REF, _spec(suspend=True), CONFIG, run=1)["spec"]["suspend"] is True


def test_cronjob_manifest() -> None:
    cronjob = build_cronjob(REF, _spec(schedule="0 3 * * *", suspend=True), CONFIG)
    assert cronjob["metadata"]["name"] == "chembl-34-cron"
    assert cronjob["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    spec = cronjob["spec"]
    assert spec["schedule"] == "0 3 * * *"
    assert spec["suspend"] is True
    assert spec["concurrencyPolicy"] == "Forbid"
    template = spec["jobTemplate"]
    assert template["metadata"]["labels"][LABEL_IR] == "chembl-34"
    assert template["metadata"]["labels"]["molstream.io/scheduled"] == "true"
    assert template["metadata"]["annotations"]["molstream.io/ingestrequest-name"] == "chembl-34"
    container = _container(template["spec"]["template"]["spec"])
    env = container["env"]
    # the Job's name, from the Pod's job-name label, makes the ingest id of each scheduled run
    assert env[0] == {
        "name": "MOLSTREAM_JOB_NAME",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['job-name']"}},
    }
    assert env[1] == {
        "name": "MOLSTREAM_INGEST_ID",
        "value": "chem.chembl-34.$(MOLSTREAM_JOB_NAME)",
    }
    assert container["args"][1:3] == ["--ingest-id", "$(MOLSTREAM_INGEST_ID)"]


def test_names_stay_within_kubernetes_limits() -> None:
    long = "a" * 200 + ".example"
    assert len(job_name(long, 12345)) <= 63
    assert len(cronjob_name(long)) <= 52
    assert job_name(long, 1) != job_name("a" * 201 + ".example", 1)
    assert "." not in job_name("my.request", 1)
    assert len(label_value(long)) <= 63
    assert job_name("chembl", 1) != job_name("chembl-1", 1)


def test_a_name_that_had_to_change_carries_a_hash_of_the_original() -> None:
    """team.x and team-x are two IngestRequests: never the same Job or CronJob."""
    assert job_name("team-x", 1) == "team-x-run-1" and cronjob_name("team-x") == "team-x-cron"
    dotted = job_name("team.x", 1)
    assert dotted != "team-x-run-1" and dotted.startswith("team-x-") and dotted.endswith("-run-1")
    assert dotted == job_name("team.x", 1)  # stable
    assert cronjob_name("team.x") not in (cronjob_name("team-x"), cronjob_name("team.x.y"))
    assert job_name("a.b-c", 1) != job_name("a-b.c", 1)
    long = "b" * 80
    assert job_name(long, 1) != job_name("b" * 81, 1) and len(job_name(long, 1)) <= 63


def test_the_secret_name_is_used_exactly_as_written() -> None:
    spec = IngestRequestSpec.parse(
        {"url": "https://h/a", "credentialsSecret": {"name": "source.creds-1"}})
    assert spec.credentials_secret == "source.creds-1"
    with pytest.raises(InvalidSpecError, match="' creds ' is not a Secret name"):
        IngestRequestSpec.parse({"url": "https://h/a", "credentialsSecret": {"name": " creds "}})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("chem.chembl-34.3", ("chem", "chembl-34", "3")),
        ("chem.chembl-34.3-898c1192", ("chem", "chembl-34", "3-898c1192")),
        ("chem.my.dotted.name.7", ("chem", "my.dotted.name", "7")),
        ("chem.nightly.nightly-cron-29012345", ("chem", "nightly", "nightly-cron-29012345")),
        ("local-file-ingest", None),
        ("ns..1", None),
    ],
)
def test_parse_ingest_id(value: str, expected: tuple[str, str, str] | None) -> None:
    assert parse_ingest_id(value) == expected
    if expected:
        assert ingest_id(*expected) == value


def test_an_object_made_again_under_the_same_name_gets_new_ingest_ids() -> None:
    """The worker has completed the first object's ids: reusing them would skip every batch."""
    first = IngestRequestRef(namespace="chem", name="chembl-34", uid="898c1192-1c71-457c")
    again = IngestRequestRef(namespace="chem", name="chembl-34", uid="5f0e2d7a-0b1c-4d2e")
    assert run_ingest_id(first, 1) == "chem.chembl-34.1-898c1192"
    assert run_ingest_id(again, 1) != run_ingest_id(first, 1)
    assert parse_ingest_id(run_ingest_id(again, 1)) == ("chem", "chembl-34", "1-5f0e2d7a")


def test_spec_defaults_and_mode() -> None:
    spec = IngestRequestSpec.parse({"url": "https://h/a.csv"})
    assert spec.batch_size == 5000 and spec.mode is Mode.UPSERT and not spec.suspend
    assert spec.active_deadline_seconds == 3600 and spec.backoff_limit == 2
    assert spec.credentials_secret is None and spec.schedule is None
    assert Mode.INSERT_ONLY.cli == "insert-only" and Mode.UPSERT.cli == "upsert"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "spec.url"),
        ({"url": "https://h/a", "batchSize": 0}, "spec.batchSize"),
        ({"url": "https://h/a", "batchSize": 10**7}, "spec.batchSize"),
        ({"url": "https://h/a", "batchSize": "many"}, "spec.batchSize"),
        ({"url": "https://h/a", "mode": "merge"}, "spec.mode"),
        ({"url": "https://h/a", "suspend": "yes"}, "spec.suspend"),
        ({"url": "https://h/a", "activeDeadlineSeconds": 1}, "spec.activeDeadlineSeconds"),
        ({"url": "https://h/a", "credentialsSecret": {"name": ""}}, "spec.credentialsSecret.name"),
        # never trimmed: the admission policy authorized the name exactly as written
        *[({"url": "https://h/a", "credentialsSecret": {"name": name}},
           "spec.credentialsSecret.name")
          for name in (" creds ", "creds ", "Creds", "creds/x", "-creds", "creds.", "a" * 254)],
    ],
)
def test_spec_refused_with_the_field_named(spec: dict, field: str) -> None:
    with pytest.raises(InvalidSpecError) as info:
        IngestRequestSpec.parse(spec)
    assert info.value.field == field


def test_fetcher_template_file(tmp_path: Path) -> None:
    path = tmp_path / "fetcher.yaml"
    path.write_text(
        "image: molstream:dev\nimagePullPolicy: Never\nresources: {limits: {memory: 2Gi}}\n"
        "unknownKey: 1\n"
    )
    template = FetcherTemplate.from_file(path)
    assert template.image == "molstream:dev"
    assert template.imagePullPolicy == "Never"
    assert template.resources == {"limits": {"memory": "2Gi"}}
    assert template.securityContext["readOnlyRootFilesystem"] is True  # default kept
    assert template.volumeMounts == [{"name": "tmp", "mountPath": "/tmp"}]
    path.write_text("image: ''\n")
    with pytest.raises(ValueError, match="image"):
        FetcherTemplate.from_file(path)


def test_config_from_env(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text("image: x:1\n")
    config = OperatorConfig.from_env(
        {
            "MOLSTREAM_KAFKA_BOOTSTRAP": "k1:9092,k2:9092",
            "MOLSTREAM_ALLOWED_HOSTS": " ftp.example.org, *.example.net ,",
            "MOLSTREAM_FETCHER_TEMPLATE": str(tmp_path / "t.yaml"),
        }
    )
    assert config.kafka_bootstrap == "k1:9092,k2:9092"
    assert config.topic_prefix == "molstream" and config.events_topic == "molstream.events"
    assert config.allowed_hosts == ("ftp.example.org", "*.example.net")
    assert config.group_id == "molstream-operator"
    assert config.fetcher.image == "x:1"
    assert OperatorConfig.from_env({}).kafka_bootstrap is None


def test_config_fetcher_metrics_from_env() -> None:
    config = OperatorConfig.from_env({})
    assert config.fetcher_metrics_port is None and config.fetcher_metrics_linger_s == 60
    config = OperatorConfig.from_env(
        {"MOLSTREAM_FETCHER_METRICS_PORT": " 9464 ", "MOLSTREAM_FETCHER_METRICS_LINGER_S": "7.5"}
    )
    assert config.fetcher_metrics_port == 9464 and config.fetcher_metrics_linger_s == 7.5
    assert (
        OperatorConfig.from_env({"MOLSTREAM_FETCHER_METRICS_PORT": ""}).fetcher_metrics_port is None
    )


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("MOLSTREAM_FETCHER_METRICS_PORT", "0"),  # "any free port": nothing a Pod can declare
        ("MOLSTREAM_FETCHER_METRICS_PORT", "70000"),
        ("MOLSTREAM_FETCHER_METRICS_PORT", "metrics"),
        ("MOLSTREAM_FETCHER_METRICS_LINGER_S", "-1"),
        ("MOLSTREAM_FETCHER_METRICS_LINGER_S", "soon"),
        ("MOLSTREAM_FETCHER_METRICS_LINGER_S", "inf"),
    ],
)
def test_config_fetcher_metrics_refused(var: str, value: str) -> None:
    with pytest.raises(ValueError, match=var):
        OperatorConfig.from_env({var: value})


# --- where and how the fetcher runs (issue 19, point 5) ------------------------------------------

PLACED = FetcherTemplate.from_mapping(
    {
        "image": "registry.example/molstream:1.2.3",
        "imagePullSecrets": [{"name": "regcred"}, "other-regcred"],
        "nodeSelector": {"kubernetes.io/arch": "amd64"},
        "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "pool", "operator": "In", "values": ["ingest"]}]}]}}},
        "priorityClassName": "batch-low",
        "ttlSecondsAfterFinished": 600,
    }
)


def test_the_template_places_the_fetcher_pod() -> None:
    config = dataclasses.replace(CONFIG, fetcher=PLACED)
    for job in (
        build_job(REF, _spec(), config, run=1),
        build_cronjob(REF, _spec(schedule="0 3 * * *"), config)["spec"]["jobTemplate"],
    ):
        pod = job["spec"]["template"]["spec"]
        assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "other-regcred"}]
        assert pod["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
        assert pod["tolerations"] == PLACED.tolerations
        assert pod["affinity"] == PLACED.affinity
        assert pod["priorityClassName"] == "batch-low"
        assert pod["restartPolicy"] == "Never"  # what a podFailurePolicy needs
    assert build_job(REF, _spec(), config, run=1)["spec"]["ttlSecondsAfterFinished"] == 600


def test_default_template_sets_no_placement_and_a_ttl_of_an_hour() -> None:
    job = build_job(REF, _spec(), CONFIG, run=1)
    pod = job["spec"]["template"]["spec"]
    for key in ("imagePullSecrets", "nodeSelector", "tolerations", "affinity",
                "priorityClassName"):
        assert key not in pod
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600
    # scheduled runs keep a history instead (the CronJob's limits, the operator's pruning)
    cron = build_cronjob(REF, _spec(schedule="0 3 * * *"), CONFIG)
    assert "ttlSecondsAfterFinished" not in cron["spec"]["jobTemplate"]["spec"]
    assert (cron["spec"]["successfulJobsHistoryLimit"], cron["spec"]["failedJobsHistoryLimit"]) \
        == (3, 1)


@pytest.mark.parametrize(
    "bad",
    [
        {"imagePullSecrets": "regcred"},
        {"imagePullSecrets": [{"nom": "regcred"}]},
        {"nodeSelector": ["a"]},
        {"nodeSelector": {"zone": 1}},
        {"tolerations": {"key": "x"}},
        {"affinity": []},
        {"ttlSecondsAfterFinished": -1},
        {"ttlSecondsAfterFinished": "3600"},
    ],
)
def test_bad_placement_keys_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match="fetcher template"):
        FetcherTemplate.from_mapping(bad)


def test_job_fails_at_once_on_the_fetchers_permanent_error() -> None:
    from molstream.cli import EXIT_PERMANENT

    for job in (
        build_job(REF, _spec(), CONFIG, run=1),
        build_cronjob(REF, _spec(schedule="0 3 * * *"), CONFIG)["spec"]["jobTemplate"],
    ):
        fail, ignore = job["spec"]["podFailurePolicy"]["rules"]
        assert fail == {
            "action": "FailJob",
            "onExitCodes": {"containerName": "fetcher", "operator": "In",
                            "values": [EXIT_PERMANENT]},
        }
        assert ignore == {"action": "Ignore",
                          "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
        pod = job["spec"]["template"]["spec"]
        assert _container(pod)["name"] == "fetcher"
        assert _container(pod)["terminationMessagePolicy"] == "FallbackToLogsOnError"
        assert job["spec"]["template"]["metadata"]["annotations"] == {
            "molstream.io/ingestrequest-name": "chembl-34"
        }
