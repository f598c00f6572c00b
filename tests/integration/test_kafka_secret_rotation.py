"""The operator's event consumer recovers once the Secret is fixed (or rotated): the chart
gives it the SASL password as a file (MOLSTREAM_KAFKA_SASL_PASSWORD_FILE, a Secret volume the
kubelet updates in place), and each connection reads the files again
(KafkaSecurity.reloaded). Read once at startup, the consumer retried the old password for as
long as the Pod lived."""

from __future__ import annotations

import time
import uuid

import pytest
from molstream.kafka_security import KafkaSecurity
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


def test_the_event_consumer_recovers_once_the_password_secret_is_fixed(secured_kafka,
                                                                      tmp_path):
    env = secured_kafka.client_env("molstream")
    right = env.pop("MOLSTREAM_KAFKA_SASL_PASSWORD")
    password_file = tmp_path / "password"  # the Secret volume's file
    password_file.write_text("a-wrong-password")
    env["MOLSTREAM_KAFKA_SASL_PASSWORD_FILE"] = str(password_file)
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
