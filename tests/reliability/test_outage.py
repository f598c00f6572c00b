"""A Kafka broker gone for longer than the worker's limit (MOLSTREAM_KAFKA_OUTAGE_S): the worker
ends with one error line that names the broker and the limit, and exit status 2 (shorter
outages it rides out: test_faults.test_kafka_broker_stopped_mid_ingest). On a broker of this
test's own, so that no other test sees it go."""

from __future__ import annotations

import uuid

import pytest
from harness import service_env, wait_for, worker_args
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError
from molstream.config import Settings, Topics
from molstream_dev.kafka import KafkaServer

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.timeout(300)]


def _members(bootstrap: str, group: str) -> list:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        (info,) = admin.describe_groups([group]).values()
        return info["members"]
    except KafkaError:  # the group's coordinator is not there yet
        return []
    finally:
        admin.close()


def test_a_worker_gives_up_on_a_broker_gone_longer_than_its_limit(procs, tmp_path):
    broker = KafkaServer().start()
    try:
        prefix = f"out{uuid.uuid4().hex[:8]}"
        s = Settings(kafka_bootstrap=broker.bootstrap, topics=Topics(prefix=prefix),
                     database_url=f"sqlite:///{tmp_path / 'm.sqlite'}", redis_url="",
                     reports_dir=tmp_path / "reports", work_dir=tmp_path / "work",
                     worker_group=f"{prefix}-worker")
        worker = procs("worker", worker_args("never-sent", idle_timeout_s=600),
                       service_env(s, MOLSTREAM_KAFKA_OUTAGE_S="3"))
        wait_for(lambda: _members(broker.bootstrap, s.worker_group), timeout_s=120,
                 what="the worker in its consumer group", watch=[worker], poll_s=0.2)
        broker.stop()
        status = worker.wait(120)
    finally:
        broker.close()
    assert status == 2, worker.stderr[-3000:]
    assert "Traceback" not in worker.stderr
    last = worker.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: Kafka at {s.kafka_bootstrap} unreachable for "), last
    assert "(limit MOLSTREAM_KAFKA_OUTAGE_S=3)" in last
