"""The metrics endpoint and the bounded labels behind it (unit: a real HTTP server on
loopback, no other service)."""

from __future__ import annotations

import threading
import urllib.request

import pytest
from molstream import metrics
from molstream.contract import REASON_CLASSES, reason_class
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:  # noqa: S310
        text = r.read().decode()
    return {s.name + str(sorted(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_served_on_the_port_asked_for_and_off_without_one():
    registry = CollectorRegistry()
    Counter("molstream_test_things", "Things.", registry=registry).inc(3)
    assert metrics.serve(registry, None) is None
    server = metrics.serve(registry, 0)
    try:
        assert _scrape(server.port)["molstream_test_things_total[]"] == 3
    finally:
        server.close()


def test_linger_ends_with_the_next_scrape():
    server = metrics.MetricsServer(CollectorRegistry(), 0, "127.0.0.1")
    try:
        started = threading.Event()

        def linger():
            started.set()
            server.linger(600)

        t = threading.Thread(target=linger)
        t.start()
        started.wait()
        while t.is_alive():  # a scrape before linger() began waiting does not end it
            _scrape(server.port)
            t.join(0.05)
        server.linger(0)  # nothing to wait for
    finally:
        server.close()


def test_the_worker_and_fetcher_registries_name_their_own_series():
    worker, fetcher = metrics.names(metrics.WORKER), metrics.names(metrics.FETCHER)
    assert "molstream_worker_rows_written_total" in worker
    assert "molstream_worker_batch_apply_seconds_bucket" in worker
    assert "molstream_worker_cache_lookups_total" in worker
    assert "molstream_fetcher_rows_published_total" in fetcher
    assert not {n for n in worker if n.startswith("molstream_fetcher_")}
    assert not {n for n in fetcher if n.startswith("molstream_worker_")}
    assert "process_resident_memory_bytes" in worker & fetcher


@pytest.mark.parametrize(("reason", "cls"), [
    ("expected 29 fields, found 28", "field_count"),
    ("the row is not valid UTF-8", "encoding"),
    ("duplicate activity_id 31863 (first seen on line 2)", "duplicate"),
    ("standard_type is longer than 250 characters (the width of ChEMBL's column and of the "
     "database's)", "too_long"),
    ("canonical_smiles is longer than 100000 bytes", "too_long"),
    ("assay_description contains a NUL byte", "nul_byte"),
    ("molecule_chembl_id is empty", "empty"),
    ("activity_id is not a whole number", "not_a_number"),
    ("activity_value is not a finite number", "not_a_number"),
    ("activity_relation is not one of = < > <= >= ~ << >>", "not_in_vocabulary"),
    ("molecule_inchi_key is not a 27-character InChIKey", "not_in_vocabulary"),
    ("assay_description holds lines that read like rows of their own (a quote opened in this "
     "row is closed only in a later one)", "unclosed_quote"),
    ("the database refused the row (batch 3): value too long (22001)", "database"),
    ("activity_id is empty; molecule_chembl_id is empty", "empty"),
    ("something new", "other"),
])
def test_reason_classes(reason, cls):
    assert reason_class(reason) == cls


def test_reason_classes_are_few():
    assert len({cls for _, cls in REASON_CLASSES}) <= 12
