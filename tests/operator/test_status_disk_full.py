"""A full database as the IngestRequest shows it: Failed with reason DatabaseFull while it lasts,
Ingesting again at the worker's next progress, Succeeded at its completion (unit, no services)."""

from __future__ import annotations

from typing import Any

from molstream.messages import event as build_event
from molstream_operator import status as st
from molstream_operator.ingest_events import IngestEvent, parse_event
from molstream_operator.models import JobView

START = "2026-01-01T00:00:00Z"
NOW = "2026-01-01T00:00:10Z"
T0 = st.parse_time(START) or 0.0
ID = "chem.chembl.1"
FULL = ("database full: the SQLite database /data/molstream.db (900.0 MiB) fills its volume "
        "/data (1.0 GiB, 0 B free): the 400,000 rows still to apply need about 127.0 MiB more")


def _event(kind: str, ts: float = T0 + 1, **data: Any) -> IngestEvent:
    return IngestEvent(type=kind, ingest_id=ID, ts=ts, data={"type": kind, **data})


def _cond(status: dict[str, Any], kind: str) -> dict[str, Any]:
    (cond,) = [c for c in status["conditions"] if c["type"] == kind]
    return cond


def _ingesting() -> dict[str, Any]:
    status = st.new_run({"observedGeneration": 1}, run=1, ingest_id=ID, job_name="chembl-run-1",
                        start_time=START, now=START).status
    for e in (_event("started", source="ftp://h/a.csv"),
              _event("progress", rows_written=100, rows_total=1000)):
        status = st.apply_event(status, e, now=NOW).status
    assert status["phase"] == "Ingesting"
    return status


def test_a_full_database_fails_the_run_until_the_worker_goes_on() -> None:
    status = _ingesting()
    change = st.apply_event(status, _event("database_full", reason=FULL,
                                           needed_bytes=133_000_000), now=NOW)
    assert change is not None
    status = change.status
    assert status["phase"] == "Failed"
    assert _cond(status, "Failed")["status"] == "True"
    assert _cond(status, "Failed")["reason"] == "DatabaseFull"
    assert status["message"] == FULL  # names the volume and what it needs
    assert "completionTime" not in status  # not an end
    assert [n.reason for n in change.notes] == ["Failed"]
    assert change.notes[0].type == "Warning"

    # the fetcher's own figures meanwhile change nothing of the failure
    assert st.apply_event(status, _event("published", rows_total=1000, rows_published=1000,
                                         rows_rejected=0, batches=2), now=NOW) is None

    # space given: the worker's next progress reopens the run
    change = st.apply_event(status, _event("progress", ts=T0 + 5, rows_written=600,
                                           rows_total=1000), now=NOW)
    assert change is not None
    status = change.status
    assert status["phase"] == "Ingesting" and status["rowsWritten"] == 600
    assert _cond(status, "Failed")["status"] == "False"
    assert _cond(status, "Complete")["status"] == "False"

    status = st.apply_event(status, _event("completed", ts=T0 + 6, rows_published=1000,
                                           rows_written=1000, rows_rejected=0, duration_s=6.0,
                                           tables={"activity": 1000}), now=NOW).status
    assert status["phase"] == "Succeeded"
    assert _cond(status, "Complete")["status"] == "True"
    assert _cond(status, "Failed")["status"] == "False"


def test_completion_straight_after_a_full_database_succeeds() -> None:
    status = st.apply_event(_ingesting(), _event("database_full", reason=FULL), now=NOW).status
    status = st.apply_event(status, _event("completed", ts=T0 + 3, rows_published=1000,
                                           rows_written=1000, rows_rejected=0,
                                           tables={"activity": 1000}), now=NOW).status
    assert status["phase"] == "Succeeded"


def test_other_failures_stay_final() -> None:
    status = _ingesting()
    status = st.apply_event(status, _event("failed", stage="apply", reason="no such table"),
                            now=NOW).status
    assert _cond(status, "Failed")["reason"] == "ApplyFailed"
    assert st.apply_event(status, _event("progress", ts=T0 + 5, rows_written=600), now=NOW) \
        is None
    # and an apply failure during a full database is one
    status = st.apply_event(_ingesting(), _event("database_full", reason=FULL), now=NOW).status
    status = st.apply_event(status, _event("failed", stage="apply", reason="permission denied"),
                            now=NOW).status
    assert _cond(status, "Failed")["reason"] == "ApplyFailed"
    assert st.apply_event(status, _event("progress", ts=T0 + 5, rows_written=600), now=NOW) \
        is None


def test_the_fetcher_job_failing_during_a_full_database_is_shown() -> None:
    status = st.apply_event(_ingesting(), _event("database_full", reason=FULL), now=NOW).status
    job = JobView(name="chembl-run-1", namespace="chem", ingestrequest="chembl",
                  creation_time=START, scheduled=False, failure_reason="BackoffLimitExceeded",
                  failure_message="the fetcher failed 3 times")
    change = st.apply_job(status, job, now=NOW)
    assert change is not None
    assert _cond(change.status, "Failed")["reason"] == "BackoffLimitExceeded"


def test_the_worker_s_event_parses() -> None:
    from molstream.messages import to_json

    body = build_event("database_full", ID, reason=FULL, needed_bytes=5)
    parsed = parse_event(ID.encode(), to_json(body))
    assert parsed.type == "database_full" and parsed.str_field("reason") == FULL
