"""The operator against a real kube-apiserver: a fetcher that ended because Kafka's log volume is
full (exit status 3, its one line in the termination message) fails the IngestRequest at once
with reason KafkaFull and that line (the Job controller and the kubelet played by the test, as
in test_job_policies.py; the real broker filling its volume is
tests/reliability/test_kafka_full.py)."""

from __future__ import annotations

from typing import Any

import pytest
from fetcher_pods import FETCHER_SA, create_pod, job_failed_by_policy, kubelet_terminated
from molstream.kafka_full import PREFIX
from molstream_operator.manifests import FETCHER_EXIT_PERMANENT
from operator_harness import Namespace, ingestrequest

pytestmark = [pytest.mark.kube]

SAID = (f"publish failed: {PREFIX}: Kafka at molstream-kafka:9092 could not write to its log "
        "directory (KAFKA_STORAGE_ERROR for TopicPartition(topic='ns.molstream.rows', "
        "partition=0): a full or failed disk; a broker whose only log directory fails shuts "
        "down): the file's 24,000,000 rows need about 1.1 GiB there, besides what the topics "
        "keep of earlier ingests for their retention (7 days by default); give Kafka's log "
        "volume more space (the chart's kafka.persistence.size), start the broker and run the "
        "ingest again: what it acknowledged is kept")


def test_a_full_kafka_log_volume_fails_the_request_as_kafka_full(
        ns: Namespace, start_operator: Any) -> None:
    ns.context = start_operator().tail
    ns.apply([FETCHER_SA, ingestrequest("kfull", url="https://data.example.org/a.csv.gz",
                                        credentialsSecret=None)])
    ns.wait_jobs(1)
    pod = create_pod(ns, "kfull-run-1")
    ns.job_status("kfull-run-1", "active")
    ns.wait_phase("kfull", "Fetching")
    kubelet_terminated(ns, pod, FETCHER_EXIT_PERMANENT, f"error: {SAID}\n")
    job_failed_by_policy(ns, "kfull-run-1", pod, FETCHER_EXIT_PERMANENT, failed=False)
    status = ns.wait_phase("kfull", "Failed")
    assert status["message"] == f"Job kfull-run-1 failed: {SAID}"
    failed = ns.condition("kfull", "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "KafkaFull")
