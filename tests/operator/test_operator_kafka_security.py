"""The operator's event consumer through a Kafka secured as Strimzi runs one
(molstream_dev.kafka_secured): the worker's events, sent by molstream's own publisher over
SASL_SSL (SCRAM-SHA-512, CA and hostname verified), drive an IngestRequest to Succeeded; and a
refused login is one line in the log and in the events probe, never the password, while the
operator keeps running."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from molstream.config import Topics
from molstream.kafka_security import KafkaSecurity
from molstream.publish import Publisher, ensure_topics
from molstream_dev.kafka_secured import TOPIC_PREFIX
from operator_harness import Namespace, ingestrequest, secret, wait_for

pytestmark = pytest.mark.kafka


@pytest.fixture
def topic_prefix() -> str:
    """Under the prefix the secured broker's test users have ACLs for."""
    return f"{TOPIC_PREFIX}op{secrets.token_hex(4)}"


def _operator(start_operator: Any, secured_kafka: Any, topic_prefix: str,
              env: dict[str, str]) -> Any:
    return start_operator(kafka=env["MOLSTREAM_KAFKA_BOOTSTRAP"], extra_env={
        **env, "MOLSTREAM_OPERATOR_GROUP_ID": f"{topic_prefix}-operator"})


def test_the_workers_events_reach_the_status_through_sasl_ssl(
    ns: Namespace, start_operator: Any, secured_kafka: Any, topic_prefix: str
) -> None:
    env = secured_kafka.client_env("molstream")
    security = KafkaSecurity.from_env(env)
    topics = Topics(prefix=topic_prefix)
    ensure_topics(secured_kafka.bootstrap, topics, security=security)
    op = _operator(start_operator, secured_kafka, topic_prefix, env)
    ns.context = op.tail
    wait_for(lambda: (op.healthy() or {}).get("events", {}).get("connected"),
             what="the event consumer connected over SASL_SSL", context=op.tail)

    ns.apply([secret("pw"), ingestrequest("secure")])
    ns.wait_jobs(1)
    ingest = ns.wait_status("secure", lambda s: s.get("ingestId"), "an ingest id")["ingestId"]
    ns.job_status("secure-run-1", "active")
    ns.wait_phase("secure", "Fetching")

    events = Publisher(secured_kafka.bootstrap, topics, client_id="molstream-worker",
                       security=security)
    try:
        events.event("started", ingest, source="ftp://molstream-ftp:2121/activities.csv.gz")
        events.event("completed", ingest, rows_published=7, rows_written=7, rows_rejected=0,
                     duration_s=1.0, tables={"activity": 7}, report_path="/r.csv")
        events.wait_for_acks(60)
    finally:
        events.close()
    ns.job_status("secure-run-1", "complete")
    status = ns.wait_phase("secure", "Succeeded")
    assert status["rowsWritten"] == 7
    assert env["MOLSTREAM_KAFKA_SASL_PASSWORD"] not in op.log()


def test_a_refused_login_is_one_line_and_the_operator_keeps_running(
    start_operator: Any, secured_kafka: Any, topic_prefix: str
) -> None:
    env = {**secured_kafka.client_env("molstream"),
           "MOLSTREAM_KAFKA_SASL_PASSWORD": "not-the-password"}
    op = _operator(start_operator, secured_kafka, topic_prefix, env)
    error = wait_for(lambda: (op.healthy() or {}).get("events", {}).get("error"),
                     what="the events probe saying why", context=op.tail)
    assert "refused the SASL login of user 'molstream' (SCRAM-SHA-512)" in error
    wait_for(lambda: "refused the SASL login" in op.log(), what="the refusal in the log",
             context=op.tail)
    refusals = [line for line in op.log().splitlines() if "refused the SASL login" in line]
    assert refusals and all("Traceback" not in line for line in refusals)
    assert "not-the-password" not in op.log()
    assert not (op.healthy() or {}).get("events", {}).get("connected")
