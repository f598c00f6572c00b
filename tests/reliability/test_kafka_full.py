"""Kafka's log volume full, for real: a broker whose only log directory is a small tmpfs.

The broker answers the write that does not fit with KAFKA_STORAGE_ERROR and shuts down (its
only log directory offline). The fetcher ends with one line naming Kafka's log volume and what
the rows still to publish need there, exit status 3 (the fetcher Job is not retried into the
same full disk), which the operator shows as reason KafkaFull. The batches the broker
acknowledged are still there once it is started again with room, and a rerun of the same
ingest completes into a database equal to what the file implies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from expected import actual_tables, expected_tables
from harness import fetch_args, service_env, worker_args
from molstream.config import Settings, Topics
from molstream.kafka_full import PREFIX
from molstream.messages import decode
from molstream_dev.kafka import KafkaServer
from molstream_operator import job_failures
from molstream_operator.models import JobView
from sqlalchemy import create_engine
from waits import topic_messages

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROWS = 100_000  # ~4.6 MB on the rows topic: more than the 3 MiB volume holds


@pytest.fixture
def broker_on_small_volume() -> Iterator[tuple[KafkaServer, Path]]:
    if os.geteuid() != 0:
        pytest.skip("a full disk is a small tmpfs here, and mounting one needs root")
    kafka = KafkaServer()
    data = kafka.dir / "data"  # its log.dirs (the KRaft metadata log too), as in the chart
    data.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(data)], check=True)
    try:
        kafka.start()
        yield kafka, data
    finally:
        kafka.kill()
        subprocess.run(["umount", str(data)], check=False)
        kafka.remove()


def test_a_full_kafka_log_volume_ends_the_fetch_clearly_and_a_rerun_completes(
        broker_on_small_volume, tmp_path: Path, procs) -> None:
    kafka, data = broker_on_small_volume
    sample = tmp_path / "activities.csv.gz"
    subprocess.run([sys.executable, "-m", "molstream", "sample", "--rows", str(ROWS),
                    "--out", str(sample)], check=True, stdout=subprocess.DEVNULL)
    prefix = f"t{uuid.uuid4().hex[:10]}"
    settings = Settings(kafka_bootstrap=kafka.bootstrap, topics=Topics(prefix=prefix),
                        database_url=f"sqlite:///{tmp_path / 'molstream.db'}", redis_url="",
                        reports_dir=tmp_path / "reports", work_dir=tmp_path / "work",
                        worker_group=f"{prefix}-worker", batch_size=2000, retries=1)
    # a short outage limit: the broker is gone for good once its volume is full
    env = service_env(settings, MOLSTREAM_KAFKA_OUTAGE_S="15")
    ingest_id = f"kfull-{uuid.uuid4().hex[:8]}"

    fetcher = procs("fetcher", fetch_args(f"file://{sample}", ingest_id), env)
    assert fetcher.wait(300) == 3, fetcher.stderr[-3000:]  # permanent: not retried
    errors = [line for line in fetcher.stderr.splitlines() if line.startswith("error: ")]
    assert errors, fetcher.stderr[-3000:]
    line = errors[-1].removeprefix("error: ")
    assert line.startswith(f"publish failed: {PREFIX}: "), line
    assert kafka.bootstrap in line and "kafka.persistence.size" in line
    assert f"the file's {ROWS:,} rows need about" in line and "Traceback" not in fetcher.stderr
    assert not kafka.running  # the broker shut down with its only log directory
    assert "No space left on device" in kafka.log.read_text(errors="replace")

    job = JobView(name="ir-run-1", namespace="ns", ingestrequest="ir", creation_time="",
                  scheduled=False, failure_reason="PodFailurePolicy", failure_message="")
    shown = job_failures.explain(job, {}, {}, fetcher_message=line)
    assert shown.failure_reason == "KafkaFull" and shown.failure_message == line

    # room given, the broker started again: what it acknowledged is there, the rerun completes
    subprocess.run(["mount", "-o", "remount,size=128m", str(data)], check=True)
    kafka.start()
    kept = [decode(m.value, m.headers) for m in topic_messages(kafka.bootstrap,
                                                               settings.topics.rows)]
    assert kept and all(b.ingest_id == ingest_id for b in kept)  # acknowledged, then kept
    assert [b.seq for b in kept] == list(range(len(kept)))
    procs("fetcher", fetch_args(f"file://{sample}", ingest_id), env).expect_success(300)
    procs("worker", worker_args(ingest_id), env).expect_success(300)
    engine = create_engine(settings.database_url)
    try:
        assert actual_tables(engine) == expected_tables(sample)
    finally:
        engine.dispose()
    shutil.rmtree(tmp_path / "work", ignore_errors=True)
