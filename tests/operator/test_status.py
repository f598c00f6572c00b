"""Event → status and Job → status mapping, conditions, merge patches (unit, no services)."""

from __future__ import annotations

from typing import Any

from molstream_operator import status as st
from molstream_operator.ingest_events import IngestEvent, MalformedEvent, parse_event
from molstream_operator.models import JobView

NOW = "2026-01-01T00:00:10Z"
START = "2026-01-01T00:00:00Z"
T0 = st.parse_time(START) or 0.0
ID = "chem.chembl.1"


def _run() -> dict[str, Any]:
    change = st.new_run(
        {"observedGeneration": 1},
        run=1,
        ingest_id=ID,
        job_name="chembl-run-1",
        start_time=START,
        now=START,
    )
    return change.status


def _event(kind: str, ts: float = T0 + 1, ingest: str = ID, **data: Any) -> IngestEvent:
    return IngestEvent(type=kind, ingest_id=ingest, ts=ts, data={"type": kind, **data})


def _cond(status: dict[str, Any], kind: str) -> dict[str, Any]:
    (cond,) = [c for c in status["conditions"] if c["type"] == kind]
    return cond


def _apply(status: dict[str, Any], *events: IngestEvent) -> dict[str, Any]:
    for event in events:
        change = st.apply_event(status, event, now=NOW)
        if change is not None:
            status = change.status
    return status


def _job(**fields: Any) -> JobView:
    base: dict[str, Any] = {
        "name": "chembl-run-1",
        "namespace": "chem",
        "ingestrequest": "chembl",
        "creation_time": START,
        "scheduled": False,
    }
    return JobView(**{**base, **fields})


def test_new_run_is_pending_with_all_three_conditions() -> None:
    status = _run()
    assert status["phase"] == "Pending"
    assert status["run"] == 1 and status["ingestId"] == ID and status["jobName"] == "chembl-run-1"
    assert status["rowsWritten"] == 0 and status["rowsRejected"] == 0
    assert [c["type"] for c in status["conditions"]] == ["Ready", "Complete", "Failed"]
    assert _cond(status, "Ready")["status"] == "True"
    assert _cond(status, "Ready")["reason"] == "JobCreated"
    assert _cond(status, "Complete") | {} == {
        "type": "Complete",
        "status": "False",
        "reason": "Pending",
        "message": "",
        "lastTransitionTime": START,
        "observedGeneration": 1,
    }


def test_a_full_run() -> None:
    status = _run()
    status = _apply(status, _event("started", source="ftp://molstream-ftp:2121/a.csv.gz"))
    assert status["phase"] == "Fetching"
    assert status["message"] == "fetching ftp://molstream-ftp:2121/a.csv.gz"

    status = _apply(
        status, _event("publishing", rows_total=1000, rows_published=390, rows_rejected=10)
    )
    assert status["phase"] == "Fetching" and status["progress"] == "rows 400/1000"

    status = _apply(
        status,
        _event(
            "progress",
            rows_written=300,
            rows_applied=300,
            batches_applied=3,
            batches_total=None,
            rows_total=None,
        ),
    )
    assert status["phase"] == "Ingesting" and status["progress"] == "rows written 300"
    # the fetcher keeps publishing while the worker writes: the phase does not go back
    status = _apply(
        status, _event("publishing", rows_total=1000, rows_published=700, rows_rejected=20)
    )
    assert status["phase"] == "Ingesting" and status["rowsPublished"] == 700

    status = _apply(
        status,
        _event("published", rows_total=1000, rows_published=975, rows_rejected=25, batches=10),
    )
    assert status["phase"] == "Ingesting"
    assert status["progress"] == "rows written 300/975"
    assert "975 rows in 10 batches (25 rejected)" in status["message"]

    status = _apply(
        status,
        _event(
            "progress",
            rows_written=900,
            rows_applied=900,
            batches_applied=9,
            batches_total=10,
            rows_total=975,
        ),
    )
    assert status["progress"] == "rows written 900/975"

    tables = {
        "phase": 3,
        "activity_type": 4,
        "unit": 2,
        "relation": 3,
        "organism": 5,
        "molecule": 400,
        "target": 30,
        "activity": 975,
    }
    status = _apply(
        status,
        _event(
            "completed",
            ts=T0 + 60,
            rows_published=975,
            rows_written=975,
            rows_rejected=25,
            duration_s=59.5,
            tables=tables,
            report_path="/data/reports/chem.chembl.1.json",
        ),
    )
    assert status["phase"] == "Succeeded"
    assert status["rowsWritten"] == 975 and status["rowsRejected"] == 25
    assert status["rowsPublished"] == 975 and status["rowsTotal"] == 1000
    assert status["report"] == tables
    assert status["reportPath"] == "/data/reports/chem.chembl.1.json"
    assert status["completionTime"] == "2026-01-01T00:01:00Z"
    assert status["message"] == "975 rows written, 25 rows rejected in 59.5s"
    assert _cond(status, "Complete")["status"] == "True"
    assert _cond(status, "Complete")["reason"] == "Succeeded"
    assert _cond(status, "Failed")["status"] == "False"

    # Succeeded sticks: late or redelivered events change nothing
    assert st.apply_event(status, _event("progress", rows_written=1), now=NOW) is None
    assert st.apply_event(status, _event("failed", stage="apply", reason="x"), now=NOW) is None


def test_phase_changes_post_events_progress_does_not() -> None:
    status = _run()
    change = st.apply_event(status, _event("started", source="ftp://h/a"), now=NOW)
    assert change is not None and [n.reason for n in change.notes] == ["Fetching"]
    change2 = st.apply_event(
        change.status,
        _event("publishing", rows_total=10, rows_published=5, rows_rejected=0),
        now=NOW,
    )
    assert change2 is not None and change2.notes == ()


def test_failed_event() -> None:
    status = _apply(
        _run(),
        _event("started", source="ftp://h/a"),
        _event("failed", stage="read", reason="missing required column: target_id"),
    )
    assert status["phase"] == "Failed"
    assert status["message"] == "read failed: missing required column: target_id"
    failed = _cond(status, "Failed")
    assert failed["status"] == "True" and failed["reason"] == "ReadFailed"
    assert failed["message"] == status["message"]
    assert _cond(status, "Complete")["status"] == "False"
    assert "completionTime" in status


def test_failure_reason_is_redacted() -> None:
    status = _apply(
        _run(),
        _event(
            "failed",
            stage="fetch",
            reason="530 login failed for ftp://bob:pa55@h/a (password=pa55)",
        ),
    )
    assert "pa55" not in repr(status)
    assert "ftp://***@h/a" in status["message"]


def test_a_retried_fetcher_reopens_a_fetch_failure_but_not_an_apply_failure() -> None:
    failed = _apply(_run(), _event("failed", stage="fetch", reason="connection reset"))
    reopened = _apply(failed, _event("started", ts=T0 + 5, source="ftp://h/a"))
    assert reopened["phase"] == "Fetching"
    assert _cond(reopened, "Failed")["status"] == "False"
    assert "completionTime" not in reopened
    apply_failed = _apply(_run(), _event("failed", stage="apply", reason="disk full"))
    assert st.apply_event(apply_failed, _event("started", ts=T0 + 5), now=NOW) is None


def test_events_of_other_runs_and_older_events_are_ignored() -> None:
    status = _run()
    assert st.apply_event(status, _event("started", ingest="chem.chembl.0"), now=NOW) is None
    assert st.apply_event(status, _event("started", ingest="chem.other.1"), now=NOW) is None
    stale = _event("completed", ts=T0 - 3600, rows_written=5, tables={})
    assert st.apply_event(status, stale, now=NOW) is None
    # a little clock skew between nodes is tolerated
    assert st.apply_event(status, _event("started", ts=T0 - 2), now=NOW) is not None


def test_job_follows() -> None:
    status = _run()
    assert st.apply_job(status, _job(), now=NOW) is None  # created, not running yet
    running = st.apply_job(status, _job(active=1), now=NOW)
    assert running is not None and running.status["phase"] == "Fetching"
    done = st.apply_job(running.status, _job(succeeded=1, complete=True), now=NOW)
    assert done is not None and done.status["phase"] == "Ingesting"
    # the worker's completion arrived first: the Job's success changes nothing
    succeeded = _apply(_run(), _event("completed", rows_written=1, tables={}))
    assert st.apply_job(succeeded, _job(succeeded=1, complete=True), now=NOW) is None
    # a Job of another run is not ours to follow
    assert st.apply_job(status, _job(name="chembl-run-0", active=1), now=NOW) is None


def test_job_failure() -> None:
    change = st.apply_job(
        _run(),
        _job(
            failed=3,
            failure_reason="BackoffLimitExceeded",
            failure_message="Job has reached the specified backoff limit",
        ),
        now=NOW,
    )
    assert change is not None
    status = change.status
    assert status["phase"] == "Failed"
    assert (
        status["message"] == "Job chembl-run-1 failed: Job has reached the specified backoff limit"
    )
    assert _cond(status, "Failed")["reason"] == "BackoffLimitExceeded"
    assert [(n.type, n.reason) for n in change.notes] == [("Warning", "Failed")]
    # the fetcher's own, more precise, reason is kept when the Job fails after it
    fetch_failed = _apply(_run(), _event("failed", stage="fetch", reason="host unreachable"))
    assert st.apply_job(fetch_failed, _job(failure_reason="BackoffLimitExceeded"), now=NOW) is None


def test_suspended_job() -> None:
    change = st.apply_job(_run(), _job(suspended=True), now=NOW)
    assert change is not None
    assert change.status["phase"] == "Pending"
    assert "suspended" in change.status["message"]


def test_last_transition_time_moves_only_when_the_status_flips() -> None:
    status = _apply(_run(), _event("started"))
    later = "2026-01-01T00:05:00Z"
    change = st.apply_event(
        status, _event("publishing", rows_total=9, rows_published=1, rows_rejected=0), now=later
    )
    assert change is not None
    assert _cond(change.status, "Complete")["lastTransitionTime"] == START
    done = st.apply_event(change.status, _event("completed", rows_written=1, tables={}), now=later)
    assert done is not None
    assert _cond(done.status, "Complete")["lastTransitionTime"] == later


def test_invalid_spec_and_recovery() -> None:
    change = st.invalid_spec({}, error="spec.url: file:// URLs are refused", generation=2, now=NOW)
    assert change is not None
    status = change.status
    assert status["phase"] == "Failed" and status["observedGeneration"] == 2
    assert _cond(status, "Ready")["status"] == "False"
    assert _cond(status, "Ready")["reason"] == "InvalidSpec"
    assert _cond(status, "Failed")["reason"] == "InvalidSpec"
    assert [n.reason for n in change.notes] == ["InvalidSpec"]
    # the same error again changes nothing
    assert (
        st.invalid_spec(status, error="spec.url: file:// URLs are refused", generation=2, now=NOW)
        is None
    )
    ready = st.set_ready(
        status,
        reason="CronJobCreated",
        message="CronJob x",
        generation=3,
        now=NOW,
        phase_message="waiting for the first scheduled run",
    )
    assert ready is not None
    assert ready.status["phase"] == "Pending" and ready.status["observedGeneration"] == 3
    assert _cond(ready.status, "Ready")["status"] == "True"


def test_scheduled_runs() -> None:
    status = {"startTime": START, "jobName": "n-cron-1", "phase": "Succeeded"}
    newer = _job(name="n-cron-2", scheduled=True, creation_time="2026-01-01T01:00:00Z")
    older = _job(name="n-cron-0", scheduled=True, creation_time="2025-12-31T01:00:00Z")
    assert st.is_newer_scheduled_run(status, newer)
    assert not st.is_newer_scheduled_run(status, older)
    assert not st.is_newer_scheduled_run(status, _job(name="n-run-1", creation_time=NOW))
    assert not st.is_newer_scheduled_run(status, _job(name="n-cron-1", scheduled=True))
    change = st.new_run(
        status,
        ingest_id="chem.n.n-cron-2",
        job_name="n-cron-2",
        start_time="2026-01-01T01:00:00Z",
        now=NOW,
        last_schedule_time="2026-01-01T01:00:00Z",
    )
    assert change.status["lastScheduleTime"] == "2026-01-01T01:00:00Z"
    assert change.status["phase"] == "Pending" and "completionTime" not in change.status


def test_merge_patch() -> None:
    old = {"phase": "Ingesting", "report": {"a": 1, "b": 2}, "progress": "x", "conditions": [1]}
    new = {"phase": "Succeeded", "report": {"a": 1, "c": 3}, "conditions": [1, 2]}
    assert st.merge_patch(old, new) == {
        "progress": None,
        "phase": "Succeeded",
        "report": {"b": None, "c": 3},
        "conditions": [1, 2],
    }
    assert st.merge_patch(new, new) == {}


def test_parse_event() -> None:
    event = parse_event(
        b"chem.chembl.1",
        b'{"type":"progress","ingest_id":"chem.chembl.1",'
        b'"ts":1.5,"rows_written":10,"rows_total":null}',
    )
    assert event.type == "progress" and event.ts == 1.5
    assert event.int_field("rows_written") == 10 and event.int_field("rows_total") is None
    keyed = parse_event(b"chem.chembl.1", b'{"type":"started","ts":2}')
    assert keyed.ingest_id == "chem.chembl.1"
    for value in (
        None,
        b"\xff",
        b"[]",
        b'{"type":"nope","ts":1}',
        b'{"type":"started"}',
        b'{"type":"started","ts":1}',
    ):
        key = None if value == b'{"type":"started","ts":1}' else b"k"
        try:
            parse_event(key, value)
        except MalformedEvent:
            continue
        raise AssertionError(f"{value!r} was accepted")


def test_every_event_the_pipeline_builds_parses():
    """The operator reads exactly what molstream.messages builds, field for field."""
    from molstream.messages import EVENT_FIELDS, event, to_json
    from molstream_operator.ingest_events import parse_event

    for kind, fields in EVENT_FIELDS.items():
        built = event(kind, "ns.name.1", **dict.fromkeys(fields, 1))
        parsed = parse_event(b"ns.name.1", to_json(built))
        assert parsed.type == kind and parsed.ingest_id == "ns.name.1"
        assert all(parsed.int_field(f) == 1 for f in fields)


def test_a_batch_the_database_refused_shows_as_apply_failed() -> None:
    """The worker's `failed` event (molstream.worker) for an ingest the database cannot take."""
    reason = "batch 3: column \"gone\" of relation \"target\" does not exist (42703)"
    failed = _apply(_run(), _event("published", rows_total=10, rows_published=10,
                                   rows_rejected=0, batches=5),
                    _event("failed", ts=T0 + 2, stage="apply", reason=reason))
    assert failed["phase"] == "Failed"
    cond = _cond(failed, "Failed")
    assert cond["status"] == "True" and cond["reason"] == "ApplyFailed"
    assert reason in failed["message"] and reason in cond["message"]
    # a second announcement of the same failure changes nothing
    assert st.apply_event(failed, _event("failed", ts=T0 + 3, stage="apply", reason=reason),
                          now=NOW) is None


def test_download_and_scan_progress_read_like_sentences() -> None:
    """While the fetcher downloads and scans, the progress says how far, in units a person
    reads (decimal bytes, rows with thousands separators), without posting an event each."""
    status = _apply(_run(), _event("started", source="https://h/a.csv.gz"))
    change = st.apply_event(
        status, _event("downloading", bytes_done=1_234_000_000, bytes_total=4_100_000_000),
        now=NOW,
    )
    assert change is not None and change.notes == ()
    status = change.status
    assert status["phase"] == "Fetching"
    assert status["progress"] == "downloading 1.2 GB / 4.1 GB"
    status = _apply(status, _event("downloading", bytes_done=512, bytes_total=None))
    assert status["progress"] == "downloading 512 B"
    status = _apply(status, _event("scanning", rows_scanned=3_000_000))
    assert status["progress"] == "scanning rows 3,000,000"
    assert status["message"] == "scanning the source file"
    status = _apply(
        status, _event("publishing", rows_total=10, rows_published=5, rows_rejected=0)
    )
    assert status["progress"] == "rows 5/10"
    # a late download event, once the worker is applying, changes nothing
    status = _apply(status, _event("published", rows_total=10, rows_published=10,
                                   rows_rejected=0, batches=1))
    assert st.apply_event(status, _event("downloading", bytes_done=1, bytes_total=2),
                          now=NOW) is None
