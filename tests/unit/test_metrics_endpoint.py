"""The metrics endpoint and the bounded labels behind it (unit: a real HTTP server on
loopback, no other service)."""

from __future__ import annotations

import contextlib
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


def test_linger_waits_for_a_scrape_of_the_final_figures():
    """Scrapes before the figures were final, and requests that are not scrapes, do not end
    the linger; the next scrape of /metrics does."""
    registry = CollectorRegistry()
    final = Counter("molstream_test_final", "1 once final.", registry=registry)
    server = metrics.MetricsServer(registry, 0, "127.0.0.1")
    try:
        assert _scrape(server.port)["molstream_test_final_total[]"] == 0  # not final yet
        server.finish(final.inc)
        lingering = threading.Thread(target=server.linger, args=(600,))
        lingering.start()
        for request in (urllib.request.Request(f"http://127.0.0.1:{server.port}/metrics",
                                               method="HEAD"),
                        f"http://127.0.0.1:{server.port}/favicon.ico"):
            with contextlib.suppress(OSError), urllib.request.urlopen(request, timeout=30):  # noqa: S310
                pass
        assert lingering.is_alive()  # only linger(600)'s deadline or a final scrape ends it
        assert _scrape(server.port)["molstream_test_final_total[]"] == 1
        lingering.join(60)
        assert not lingering.is_alive()
        server.linger(600)  # already scraped: returns at once
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
