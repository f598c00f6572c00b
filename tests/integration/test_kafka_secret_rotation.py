"""A SASL password given as a file (MOLSTREAM_KAFKA_SASL_PASSWORD_FILE, a Secret volume the
kubelet updates in place when the Secret is fixed, or rotated as Strimzi does) is read again
where a login is refused: the operator's event consumer reads the files on each connection
(KafkaSecurity.reloaded), and recovers; the access probe of the fetcher and the worker reads
them once more after a refused login before calling it permanent (kafka_access.check_access),
and they run with what it was let in with. Read once at startup, the consumer retried the old
password for as long as the Pod lived, and a fetcher failed its run for good."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from conftest import Pipeline
from molstream.config import Settings, Topics
from molstream.kafka_access import check_access
from molstream.kafka_security import KafkaAccessError, KafkaSecurity
from molstream_dev.kafka_secured import TOPIC_PREFIX
from molstream_operator.consumer import EventConsumer

pytestmark = [pytest.mark.kafka]


def _wait(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


REAL = Path(__file__).resolve().parents[1] / "data" / "chembl-real"


def _password_file_env(kafka, tmp_path: Path) -> tuple[dict[str, str], Path, str]:
    """(the variables, the password file holding a wrong password, the right password)."""
    env = kafka.client_env("molstream")
    right = env.pop("MOLSTREAM_KAFKA_SASL_PASSWORD")
    password_file = tmp_path / "password"  # the Secret volume's file
    password_file.write_text("a-wrong-password")
    env["MOLSTREAM_KAFKA_SASL_PASSWORD_FILE"] = str(password_file)
    return env, password_file, right


def test_the_event_consumer_recovers_once_the_password_secret_is_fixed(secured_kafka,
                                                                      tmp_path):
    env, password_file, right = _password_file_env(secured_kafka, tmp_path)
    prefix = f"{TOPIC_PREFIX}rot{uuid.uuid4().hex[:8]}"
    consumer = EventConsumer(bootstrap=env["MOLSTREAM_KAFKA_BOOTSTRAP"],
                             topic=f"{prefix}.events", group_id=f"{prefix}-operator",
                             handle=lambda event: "applied",
                             security=KafkaSecurity.from_env(env))
    consumer.start()
    try:
        assert _wait(lambda: consumer.error is not None, 60), consumer.health()
        assert "refused the SASL login" in consumer.error
        password_file.write_text(right)  # the Secret fixed; the kubelet updates the file
        recovered = _wait(lambda: consumer.connected, 75)
        assert recovered, f"still refused after the Secret was fixed: {consumer.health()}"
    finally:
        consumer.stop()


def test_the_probe_logs_in_with_the_password_file_as_it_is_after_a_refusal(secured_kafka,
                                                                          tmp_path):
    env, password_file, right = _password_file_env(secured_kafka, tmp_path)
    stale = KafkaSecurity.from_env(env)  # read before the Secret was fixed
    with pytest.raises(KafkaAccessError, match="refused the SASL login"):
        check_access(env["MOLSTREAM_KAFKA_BOOTSTRAP"], stale, timeout_s=10)  # still wrong
    password_file.write_text(right)
    fresh = check_access(env["MOLSTREAM_KAFKA_BOOTSTRAP"], stale, timeout_s=10)
    assert fresh.password == right and stale.password != right


def test_a_fetcher_and_a_worker_whose_password_file_changed_since_they_read_it_run(
        secured_kafka, tmp_path):
    """Read with the old password (the Secret rotated meanwhile), they log in with the new
    one, and publish, consume and apply with it."""
    env, password_file, right = _password_file_env(secured_kafka, tmp_path)
    prefix = f"{TOPIC_PREFIX}rot{uuid.uuid4().hex[:8]}"
    pipeline = Pipeline(Settings(
        kafka_bootstrap=env["MOLSTREAM_KAFKA_BOOTSTRAP"],
        kafka_security=KafkaSecurity.from_env(env), topics=Topics(prefix=prefix),
        worker_group=f"{prefix}-worker", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        redis_url="", reports_dir=tmp_path / "reports", work_dir=tmp_path / "work",
        batch_size=5000))
    password_file.write_text(right)  # the kubelet updates the file
    url = f"file://{REAL / 'activities.csv.gz'}"
    report = pipeline.ingest(url, "rotated")
    assert report["rows_written"] == json.loads((REAL / "expected.json").read_text())["rows"]
