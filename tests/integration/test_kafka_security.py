"""The pipeline through a Kafka secured as Strimzi runs one (molstream_dev.kafka_secured): the
real ChEMBL rows through SASL_SSL with SCRAM-SHA-512 (CA and hostname verified), through SSL
with an mTLS client certificate, and through SASL PLAIN. And every way Kafka refuses a client
(a wrong password, a CA it does not know, a name its certificate does not carry, a missing
ACL, no client certificate, a listener of another kind) ends the fetcher and the worker at
once, with one error line that names the problem and never the password; the fetcher exits 3
(permanent: the operator fails the run without retrying it; the same settings fail the same
way again)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import waits
from conftest import Pipeline
from expected import actual_tables, expected_tables
from kafka import KafkaConsumer
from molstream.config import Settings, Topics
from molstream.db import make_engine
from molstream.kafka_security import KafkaSecurity
from molstream_dev import certs
from molstream_dev.kafka_secured import TOPIC_PREFIX

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

REAL = Path(__file__).resolve().parents[1] / "data" / "chembl-real"
URL = f"file://{REAL / 'activities.csv.gz'}"
EXPECTED = json.loads((REAL / "expected.json").read_text())
EXIT_PERMANENT = 3


def _prefix() -> str:
    return f"{TOPIC_PREFIX}{uuid.uuid4().hex[:10]}"  # what the test users' ACLs cover


@pytest.fixture
def secured_pipeline(secured_kafka, redis_url, tmp_path):
    def make(env: dict[str, str]) -> Pipeline:
        prefix = _prefix()
        return Pipeline(Settings(
            kafka_bootstrap=env["MOLSTREAM_KAFKA_BOOTSTRAP"],
            kafka_security=KafkaSecurity.from_env(env),
            topics=Topics(prefix=prefix), worker_group=f"{prefix}-worker",
            database_url=f"sqlite:///{tmp_path / f'{prefix}.sqlite'}", redis_url=redis_url,
            reports_dir=tmp_path / "reports", work_dir=tmp_path / "work", batch_size=5000))
    return make


def _counts(database_url: str) -> dict[str, int]:
    tables = actual_tables(make_engine(database_url))
    return {name: len(rows) for name, rows in tables.items()}


def test_real_rows_through_sasl_ssl_scram_sha_512(secured_kafka, secured_pipeline):
    p = secured_pipeline(secured_kafka.client_env("molstream"))
    assert p.settings.kafka_security.check_hostname  # the certificate's name is checked
    report = p.ingest(URL, "scram-1")
    assert report["rows_written"] == EXPECTED["rows"] and report["rows_rejected"] == 0
    assert actual_tables(make_engine(p.settings.database_url)) == expected_tables(
        REAL / "activities.csv.gz")
    consumer = KafkaConsumer(**secured_kafka.client_config("molstream"))
    try:
        events = [json.loads(m.value) for m in waits.read_to_end(consumer,
                                                                 p.settings.topics.events)]
    finally:
        consumer.close()
    kinds = [e["type"] for e in events if e["ingest_id"] == "scram-1"]
    assert kinds[0] == "started" and kinds[-1] == "completed"


@pytest.mark.parametrize("how", ["mtls", "plain"])
def test_real_rows_through_mtls_and_sasl_plain(secured_kafka, secured_pipeline, how):
    env = (secured_kafka.client_env(mtls=True) if how == "mtls" else
           secured_kafka.client_env("molstream", mechanism="PLAIN"))
    p = secured_pipeline(env)
    report = p.ingest(URL, f"{how}-1")
    assert report["rows_written"] == EXPECTED["rows"]
    counts = _counts(p.settings.database_url)
    assert {t: counts[t] for t in ("activity", "molecule", "target")} == {
        t: EXPECTED[t] for t in ("activity", "molecule", "target")}


# -- refusals: the command line, as the fetcher Job and the worker Deployment run it ----------

def _run(command: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    prefix = _prefix()
    full = {k: v for k, v in os.environ.items() if not k.startswith("MOLSTREAM_")}
    full.update(MOLSTREAM_TOPIC_PREFIX=prefix, MOLSTREAM_WORKER_GROUP=f"{prefix}-worker",
                MOLSTREAM_WORK_DIR=str(tmp_path / "work"), MOLSTREAM_HEALTH_PORT="0",
                MOLSTREAM_REDIS_URL="", MOLSTREAM_KAFKA_OUTAGE_S="300", **env)
    return subprocess.run([sys.executable, "-m", "molstream", *command], env=full,
                          capture_output=True, text=True, timeout=240)


def _fetch(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    return _run(["fetch", "--url", URL, "--ingest-id", "refused"], env, tmp_path)


def _work(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    return _run(["worker", "--database-url", f"sqlite:///{tmp_path / 'w.sqlite'}",
                 "--idle-timeout", "600"], env, tmp_path)


def _one_error_line(done: subprocess.CompletedProcess, secret: str | None) -> str:
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    if secret:
        assert secret not in done.stderr + done.stdout
    return errors[0]


def _wrong_password(k) -> dict:
    return {**k.client_env("molstream"), "MOLSTREAM_KAFKA_SASL_PASSWORD": "not-the-password"}


def _unknown_ca(k) -> dict:  # a CA Kafka's certificate is not signed by
    return {**k.client_env("molstream"), "MOLSTREAM_KAFKA_CA_FILE": str(certs.self_signed()[0])}


def _other_name(k) -> dict:  # the broker's certificate names 127.0.0.1 only
    return {**k.client_env("molstream"),
            "MOLSTREAM_KAFKA_BOOTSTRAP": k.bootstrap.replace("127.0.0.1", "localhost")}


def _no_write(k) -> dict:
    return k.client_env("nowrite")


def _no_client_cert(k) -> dict:
    env = k.client_env(mtls=True)
    del env["MOLSTREAM_KAFKA_CERT_FILE"], env["MOLSTREAM_KAFKA_KEY_FILE"]
    return env


def _mtls_on_the_sasl_port(k) -> dict:  # Strimzi's tls and scram listeners mixed up
    return {**k.client_env(mtls=True), "MOLSTREAM_KAFKA_BOOTSTRAP": k.bootstrap}


def _no_tls(k) -> dict:
    env = {**k.client_env("molstream"), "MOLSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}
    del env["MOLSTREAM_KAFKA_CA_FILE"]
    return env


@pytest.mark.parametrize(("settings", "says"), [
    (_wrong_password, "refused the SASL login of user 'molstream' (SCRAM-SHA-512): wrong "
                      "password or unknown user"),
    (_unknown_ca, "is not signed by the CA in MOLSTREAM_KAFKA_CA_FILE"),
    (_other_name, "does not carry the name the client connected to"),
    (_no_write, "Kafka denies user 'nowrite' Write on topic 'sec"),
    (_no_client_cert, "requires a client certificate (mTLS): set MOLSTREAM_KAFKA_CERT_FILE"),
    (_mtls_on_the_sasl_port, "the listener expects SASL"),
    (_no_tls, "the listener expects TLS"),
], ids=["wrong-password", "unknown-ca", "hostname-mismatch", "missing-acl", "no-client-cert",
        "tls-on-the-sasl-listener", "plaintext-on-a-tls-listener"])
def test_the_fetcher_ends_at_once_with_one_line_naming_the_refusal(secured_kafka, tmp_path,
                                                                  settings, says):
    env = settings(secured_kafka)
    done = _fetch(env, tmp_path)
    assert done.returncode == EXIT_PERMANENT, done.stderr
    line = _one_error_line(done, env.get("MOLSTREAM_KAFKA_SASL_PASSWORD"))
    assert says in line
    assert not (tmp_path / "work" / "refused" / "download").exists()  # nothing downloaded


@pytest.mark.parametrize(("settings", "says"), [
    (_wrong_password, "refused the SASL login of user 'molstream'"),
    (_unknown_ca, "is not signed by the CA in MOLSTREAM_KAFKA_CA_FILE"),
    (lambda k: k.client_env("nogroup"), "Kafka denies user 'nogroup' Read on consumer group"),
], ids=["wrong-password", "unknown-ca", "missing-group-acl"])
def test_the_worker_ends_at_once_with_one_line_naming_the_refusal(secured_kafka, tmp_path,
                                                                 settings, says):
    env = settings(secured_kafka)
    done = _work(env, tmp_path)  # (--idle-timeout 600: only the refusal ends it soon)
    assert done.returncode == EXIT_PERMANENT, done.stderr
    assert says in _one_error_line(done, env.get("MOLSTREAM_KAFKA_SASL_PASSWORD"))


def test_a_wrong_security_variable_is_one_line_naming_it(secured_kafka, tmp_path):
    env = {**secured_kafka.client_env("molstream"), "MOLSTREAM_KAFKA_SECURITY_PROTOCOL": "TLS"}
    done = _fetch(env, tmp_path)
    assert done.returncode == EXIT_PERMANENT
    assert "MOLSTREAM_KAFKA_SECURITY_PROTOCOL" in _one_error_line(
        done, env["MOLSTREAM_KAFKA_SASL_PASSWORD"])
