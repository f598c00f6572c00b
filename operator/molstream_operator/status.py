"""Pure status logic: what ``IngestRequest.status`` becomes after a Job change or an event.

Phases: Pending → Fetching → Ingesting → Succeeded, or Failed from any of them. Within a run the
phase never goes back, with two exceptions: a ``started`` event after a fetcher failure (the Job
retried the Pod) reopens the run in Fetching, and the worker's progress after a failure it
overcomes by itself (``RECOVERABLE``: DatabaseFull, once the volume has room) reopens it in
Ingesting. A Succeeded run stays Succeeded.

Conditions, always all three, in the standard Kubernetes shape:

* ``Ready``: True once the spec is accepted and the Job (or CronJob) exists; False with reason
  ``InvalidSpec`` or ``JobRejected`` otherwise.
* ``Complete``: True when the current run succeeded (``kubectl wait --for=condition=Complete``).
* ``Failed``: True when the current run failed; its reason says why (``FetchFailed``,
  ``ReadFailed``, ``PublishFailed``, ``ApplyFailed``, ``BackoffLimitExceeded``,
  ``DeadlineExceeded``, ``PermanentError``, ``InvalidSpec``, ...).

Plus ``Stalled`` while the run's fetcher Pod cannot start (``pod_health``), kept as it is here.

The reason of a False Complete/Failed condition is the phase (``Pending``, ``Fetching``...).
Every function here takes the current status and returns a ``Change`` (the whole new status and
the Kubernetes Event to post, if the phase moved) or None when nothing changes.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .ingest_events import IngestEvent
from .models import JobView
from .urls import redact

__all__ = [
    "NOT_STARTED_REASONS",
    "SKEW_SECONDS",
    "Change",
    "Note",
    "RECOVERABLE",
    "Phase",
    "apply_event",
    "apply_job",
    "condition",
    "format_time",
    "invalid_spec",
    "is_newer_scheduled_run",
    "merge_patch",
    "new_run",
    "parse_time",
    "set_ready",
]

# A mirror run's figures (molstream.mirror), as status.mirror shows them.
MIRROR_FIGURES = {"added": "added", "changed": "changed", "retired": "retired",
                  "restored": "restored", "held_back": "heldBack"}

#: Events stamped this long before the run's startTime still count (clock skew between nodes).
SKEW_SECONDS = 5.0
_MESSAGE_MAX = 1000


class Phase(enum.StrEnum):
    PENDING = "Pending"
    FETCHING = "Fetching"
    INGESTING = "Ingesting"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


_RANK = {
    Phase.PENDING: 0,
    Phase.FETCHING: 1,
    Phase.INGESTING: 2,
    Phase.SUCCEEDED: 3,
    Phase.FAILED: 3,
}
_STAGE_REASONS = {
    "fetch": "FetchFailed",
    "read": "ReadFailed",
    "publish": "PublishFailed",
    "apply": "ApplyFailed",
}
#: Failures of the fetcher's Pod that a retry of the Job may still overcome.
_RETRYABLE = frozenset({"FetchFailed", "ReadFailed", "PublishFailed"})
#: Failures the worker overcomes by itself once someone acts (a full database's volume grown):
#: the run is Failed meanwhile (``kubectl wait --for=condition=Failed`` says someone must act),
#: and the worker's next progress takes it back to Ingesting, its completion to Succeeded.
RECOVERABLE = frozenset({"DatabaseFull"})
#: The worker's events that show whether it overcame such a failure.
_RECOVERY_EVENTS = frozenset({"progress", "completed", "failed", "database_full"})
#: Failures that happen before any run could start: the spec or the child was refused.
NOT_STARTED_REASONS = frozenset({"InvalidSpec", "JobRejected", "CronJobRejected"})
#: Fields of one run, cleared when a new run starts.
_RUN_FIELDS = (
    "rowsTotal",
    "rowsPublished",
    "rowsWritten",
    "rowsRejected",
    "progress",
    "report",
    "reportPath",
    "mirror",
    "completionTime",
    "message",
    "runSource",
)
#: How many loaded files status.loadedSources remembers (the most recent last).
LOADED_MAX = 20
#: A source's identity: the fetcher's event fields -> the status's.
_IDENTITY_FIELDS = {
    "source": "url",
    "etag": "etag",
    "last_modified": "lastModified",
    "size": "size",
    "sha256": "sha256",
    "release": "release",
}


@dataclasses.dataclass(frozen=True)
class Note:
    """A Kubernetes Event to post on the IngestRequest."""

    type: str  # Normal or Warning
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class Change:
    """The whole next status, and the Kubernetes Events the move deserves (maybe none)."""

    status: dict[str, Any]
    notes: tuple[Note, ...] = ()

    def then(self, other: Change | None) -> Change:
        """This change followed by ``other`` (computed from ``self.status``)."""
        if other is None:
            return self
        return Change(other.status, self.notes + other.notes)


def format_time(value: float | datetime) -> str:
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _phase(status: Mapping[str, Any]) -> Phase:
    try:
        return Phase(status.get("phase") or Phase.PENDING)
    except ValueError:
        return Phase.PENDING


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for cond in status.get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == kind:
            return cond
    return {}


def _clip(message: str) -> str:
    message = redact(message)
    return message if len(message) <= _MESSAGE_MAX else message[: _MESSAGE_MAX - 1] + "…"


def condition(
    status: Mapping[str, Any], kind: str, value: bool, reason: str, message: str, *,
    generation: int, now: str,
) -> dict[str, Any]:
    """Condition ``kind`` as it is now; its lastTransitionTime is kept from ``status`` while
    its True/False stays the same."""
    old = _condition(status, kind)
    flag = "True" if value else "False"
    since = old.get("lastTransitionTime") if old.get("status") == flag else None
    return {
        "type": kind,
        "status": flag,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or now,
        "observedGeneration": generation,
    }


def _conditions(
    status: Mapping[str, Any],
    *,
    phase: Phase,
    message: str,
    failure_reason: str | None,
    ready: tuple[bool, str, str] | None,
    generation: int,
    now: str,
    complete_reason: str | None = None,
) -> list[dict[str, Any]]:
    def cond(kind: str, value: bool, reason: str, text: str) -> dict[str, Any]:
        return condition(status, kind, value, reason, text, generation=generation, now=now)

    if ready is None:
        old_ready = _condition(status, "Ready")
        ready = (True, "Accepted", "")
        if old_ready:
            ready = (
                old_ready.get("status") == "True",
                old_ready.get("reason") or "",
                old_ready.get("message") or "",
            )
    ready_value, ready_reason, ready_message = ready
    failed = phase is Phase.FAILED
    others = [  # kept as they are: Stalled (molstream_operator.pod_health)
        dict(c) for c in status.get("conditions") or []
        if isinstance(c, Mapping) and c.get("type") not in ("Ready", "Complete", "Failed")
    ]
    return [
        cond("Ready", ready_value, ready_reason or "Accepted", ready_message),
        cond(
            "Complete",
            phase is Phase.SUCCEEDED,
            (complete_reason or phase.value) if phase is Phase.SUCCEEDED else phase.value,
            message if phase is Phase.SUCCEEDED else "",
        ),
        cond(
            "Failed",
            failed,
            (failure_reason or "Failed") if failed else phase.value,
            message if failed else "",
        ),
        *others,
    ]


def _with_phase(
    status: Mapping[str, Any],
    phase: Phase,
    *,
    message: str,
    now: str,
    failure_reason: str | None = None,
    ready: tuple[bool, str, str] | None = None,
    generation: int | None = None,
    complete_reason: str | None = None,
) -> dict[str, Any]:
    new = dict(status)
    message = _clip(message)
    new["phase"] = phase.value
    new["message"] = message
    if generation is not None:
        new["observedGeneration"] = generation
    if failure_reason is None and phase is Phase.FAILED:
        failure_reason = _condition(status, "Failed").get("reason") or "Failed"
    if complete_reason is None and phase is Phase.SUCCEEDED:
        old = _condition(status, "Complete")  # Succeeded or Unchanged, as the run ended
        complete_reason = old.get("reason") if old.get("status") == "True" else None
    new["conditions"] = _conditions(
        status,
        phase=phase,
        message=message,
        failure_reason=failure_reason,
        ready=ready,
        generation=int(new.get("observedGeneration") or 0),
        now=now,
        complete_reason=complete_reason,
    )
    return new


def _change(
    old: Mapping[str, Any], new: dict[str, Any], *, kind: str | None = None
) -> Change | None:
    if new == dict(old):
        return None
    note = None
    old_phase, new_phase = old.get("phase"), new.get("phase")
    if kind is not None or old_phase != new_phase:
        phase = _phase(new)
        note = Note(
            type="Warning" if phase is Phase.FAILED else "Normal",
            reason=kind or phase.value,
            message=str(new.get("message") or phase.value),
        )
    return Change(status=new, notes=(note,) if note else ())


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) turning ``old`` into ``new``; lists go whole."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if key in old and before == value:
            continue
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            patch[key] = merge_patch(before, value)
        else:
            patch[key] = value
    return patch


# --- the spec side: runs, readiness --------------------------------------------------------------


def new_run(
    status: Mapping[str, Any],
    *,
    ingest_id: str,
    job_name: str,
    start_time: str,
    now: str,
    run: int | None = None,
    last_schedule_time: str | None = None,
) -> Change:
    """Status of a run that just began: counters zeroed, phase Pending, not Stalled."""
    new = {key: value for key, value in status.items() if key not in _RUN_FIELDS}
    new["conditions"] = [c for c in new.get("conditions") or [] if c.get("type") != "Stalled"]
    if run is not None:
        new["run"] = run
    new.update(
        ingestId=ingest_id,
        jobName=job_name,
        startTime=start_time,
        rowsPublished=0,
        rowsWritten=0,
        rowsRejected=0,
    )
    if last_schedule_time:
        new["lastScheduleTime"] = last_schedule_time
        message = f"CronJob started Job {job_name} (ingest id {ingest_id})"
        ready = _condition(status, "Ready")
        ready_state = (True, ready.get("reason") or "CronJobCreated", ready.get("message") or "")
    else:
        message = f"Job {job_name} created (ingest id {ingest_id})"
        ready_state = (True, "JobCreated", f"Job {job_name} created")
    new = _with_phase(new, Phase.PENDING, message=message, now=now, ready=ready_state)
    return Change(status=new, notes=(Note("Normal", "RunStarted", message),))


def invalid_spec(
    status: Mapping[str, Any], *, error: str, generation: int, now: str
) -> Change | None:
    """The spec cannot be acted on: Failed, Ready=False, reason InvalidSpec."""
    message = f"invalid spec: {error}"
    new = _with_phase(
        status,
        Phase.FAILED,
        message=message,
        now=now,
        failure_reason="InvalidSpec",
        ready=(False, "InvalidSpec", _clip(message)),
        generation=generation,
    )
    change = _change(status, new)
    if change is not None and (status.get("message") != new["message"] or change.notes):
        change = Change(change.status, (Note("Warning", "InvalidSpec", new["message"]),))
    return change


def set_ready(
    status: Mapping[str, Any],
    *,
    reason: str,
    message: str,
    generation: int,
    now: str,
    ready: bool = True,
    phase_message: str | None = None,
    fail: str | None = None,
) -> Change | None:
    """Record the spec's generation and the Ready condition; ``fail`` (a reason) fails the run."""
    phase = Phase.FAILED if fail else _phase(status)
    not_started = _condition(status, "Failed").get("reason") in NOT_STARTED_REASONS
    if phase is Phase.FAILED and not fail and not_started:
        # The spec is accepted again but no run has been launched for it yet.
        phase = Phase.PENDING
    new = _with_phase(
        status,
        phase,
        message=phase_message if phase_message is not None else str(status.get("message") or ""),
        now=now,
        failure_reason=fail,
        ready=(ready, reason, _clip(message)),
        generation=generation,
    )
    old_ready = _condition(status, "Ready")
    kind = None
    flag = "True" if ready else "False"
    if old_ready.get("reason") != reason or old_ready.get("status") != flag:
        kind = reason
    return _change(status, new, kind=kind)


def is_newer_scheduled_run(status: Mapping[str, Any], job: JobView) -> bool:
    """Whether ``job`` is a CronJob run that started after the current run."""
    if not job.scheduled or job.name == status.get("jobName"):
        return False
    started = parse_time(status.get("startTime"))
    created = parse_time(job.creation_time)
    return started is None or (created is not None and created >= started)


# --- the Job side ---------------------------------------------------------------------------


def apply_job(status: Mapping[str, Any], job: JobView, *, now: str) -> Change | None:
    """Follow the current run's Job: running → Fetching, failed → Failed, done → Ingesting."""
    if status.get("jobName") != job.name:
        return None
    phase = _phase(status)
    if job.failure_reason:
        recoverable = _condition(status, "Failed").get("reason") in RECOVERABLE
        if phase is Phase.SUCCEEDED or (phase is Phase.FAILED and not recoverable):
            return None
        detail = job.failure_message or job.failure_reason
        new = _with_phase(
            status,
            Phase.FAILED,
            message=f"Job {job.name} failed: {detail}",
            now=now,
            failure_reason=job.failure_reason,
        )
        new["completionTime"] = now
        return _change(status, new)
    if job.complete:
        if phase not in (Phase.PENDING, Phase.FETCHING):
            return None
        new = _with_phase(
            status,
            Phase.INGESTING,
            message=f"Job {job.name} finished publishing; the worker is applying the batches",
            now=now,
        )
        return _change(status, new)
    if phase is not Phase.PENDING:
        return None
    if job.suspended:
        return _change(
            status,
            _with_phase(
                status,
                Phase.PENDING,
                message=f"Job {job.name} is suspended (spec.suspend)",
                now=now,
            ),
            kind="Suspended",
        )
    if job.active > 0:
        return _change(
            status,
            _with_phase(status, Phase.FETCHING, message=f"Job {job.name} is running", now=now),
        )
    return None


# --- the events side ----------------------------------------------------------------------------


def _size(n: int) -> str:
    """Bytes for people, in decimal units: 1.2 GB, 340.0 MB, 512 B."""
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _download_progress(event: IngestEvent) -> str:
    done, total = event.int_field("bytes_done") or 0, event.int_field("bytes_total")
    return f"downloading {_size(done)} / {_size(total)}" if total else f"downloading {_size(done)}"


def _fetch_progress(status: Mapping[str, Any]) -> str:
    done = int(status.get("rowsPublished") or 0) + int(status.get("rowsRejected") or 0)
    total = status.get("rowsTotal")
    return f"rows {done}/{total}" if total else f"rows {done}"


def _ingest_progress(status: Mapping[str, Any], total: int | None) -> str:
    written = int(status.get("rowsWritten") or 0)
    return f"rows written {written}/{total}" if total else f"rows written {written}"


def _set_counts(new: dict[str, Any], event: IngestEvent, **fields: str) -> None:
    for field, status_key in fields.items():
        value = event.int_field(field)
        if value is not None:
            new[status_key] = value


def _identity(event: IngestEvent) -> dict[str, Any]:
    """A source's identity from an ``identified`` or ``unchanged`` event, as status shows it."""
    found: dict[str, Any] = {}
    for field, key in _IDENTITY_FIELDS.items():
        value = event.int_field(field) if field == "size" else event.str_field(field)
        if value is not None and value != "":
            found[key] = redact(value) if key == "url" else value
    return found if "url" in found else {}


def _loaded(new: dict[str, Any]) -> None:
    """The run completed: the file it identified becomes status.source, and joins
    status.loadedSources (one entry per URL, the most recent last, at most LOADED_MAX)."""
    identity = new.get("runSource")
    if not isinstance(identity, Mapping) or not identity.get("url"):
        return
    source = {**identity, "ingestId": new.get("ingestId")}
    new["source"] = {k: v for k, v in source.items() if v is not None}
    history = [
        dict(item)
        for item in new.get("loadedSources") or []
        if isinstance(item, Mapping) and item.get("url") != identity["url"]
    ]
    new["loadedSources"] = (history + [dict(identity)])[-LOADED_MAX:]


def apply_event(status: Mapping[str, Any], event: IngestEvent, *, now: str) -> Change | None:
    """Apply one fetcher or worker event of the current run (others return None)."""
    if status.get("ingestId") != event.ingest_id:
        return None
    started = parse_time(status.get("startTime"))
    if started is not None and event.ts < started - SKEW_SECONDS:
        return None  # an older run that had the same ingest id (resource deleted and recreated)
    phase = _phase(status)
    if phase is Phase.SUCCEEDED:
        return None
    if phase is Phase.FAILED:
        reason = _condition(status, "Failed").get("reason")
        retry = event.type == "started" and reason in _RETRYABLE
        recovery = event.type in _RECOVERY_EVENTS and reason in RECOVERABLE
        if not (retry or recovery):
            return None

    new = dict(status)
    kind = event.type
    if kind == "started":
        source = event.str_field("source")
        new.pop("completionTime", None)
        new["progress"] = _fetch_progress(new)
        new = _with_phase(
            new, Phase.FETCHING, message=f"fetching {source}" if source else "fetching", now=now
        )
    elif kind in ("downloading", "scanning"):
        if _RANK[phase] > _RANK[Phase.FETCHING]:
            return None  # a late event of a stage long over
        new["progress"] = (
            _download_progress(event)
            if kind == "downloading"
            else f"scanning rows {event.int_field('rows_scanned') or 0:,}"
        )
        new = _with_phase(new, Phase.FETCHING, message=f"{kind} the source file", now=now)
    elif kind == "publishing":
        _set_counts(
            new,
            event,
            rows_total="rowsTotal",
            rows_published="rowsPublished",
            rows_rejected="rowsRejected",
        )
        if _RANK[phase] <= _RANK[Phase.FETCHING]:
            new["progress"] = _fetch_progress(new)
            new = _with_phase(new, Phase.FETCHING, message="publishing rows", now=now)
        else:
            new["progress"] = _ingest_progress(new, None)
    elif kind == "published":
        _set_counts(
            new,
            event,
            rows_total="rowsTotal",
            rows_published="rowsPublished",
            rows_rejected="rowsRejected",
        )
        new["progress"] = _ingest_progress(new, new.get("rowsPublished"))
        batches = event.int_field("batches")
        message = (
            f"fetcher published {new.get('rowsPublished', 0)} rows"
            + (f" in {batches} batches" if batches is not None else "")
            + f" ({new.get('rowsRejected', 0)} rejected); the worker is applying them"
        )
        new = _with_phase(new, Phase.INGESTING, message=message, now=now)
    elif kind == "progress":
        _set_counts(new, event, rows_written="rowsWritten")
        new["progress"] = _ingest_progress(new, event.int_field("rows_total"))
        if _RANK[phase] < _RANK[Phase.INGESTING] or phase is Phase.FAILED:  # (RECOVERABLE)
            again = " again" if phase is Phase.FAILED else ""
            new = _with_phase(
                new, Phase.INGESTING, message=f"the worker is applying batches{again}", now=now
            )
    elif kind == "database_full":  # not an end: the worker retries until the rows fit
        new["progress"] = _ingest_progress(new, None) + " (database full)"
        new = _with_phase(
            new,
            Phase.FAILED,
            message=event.str_field("reason") or "database full",
            now=now,
            failure_reason="DatabaseFull",
        )
    elif kind == "identified":
        identity = _identity(event)
        if not identity:
            return None
        new["runSource"] = identity  # recorded as loaded once the run completes
    elif kind == "unchanged":
        identity = _identity(event)
        matched = event.str_field("matched") or "the source's identity"
        where = identity.get("url", "the source")
        new["completionTime"] = format_time(event.ts)
        new["progress"] = "unchanged: nothing to ingest"
        new = _with_phase(
            new,
            Phase.SUCCEEDED,
            message=f"{where} is unchanged since it was last loaded ({matched}); "
            "nothing was published",
            now=now,
            complete_reason="Unchanged",
        )
        return _change(status, new, kind="Unchanged")
    elif kind == "completed":
        _loaded(new)
        _set_counts(
            new,
            event,
            rows_published="rowsPublished",
            rows_written="rowsWritten",
            rows_rejected="rowsRejected",
        )
        if "rowsTotal" not in new:
            published, rejected = new.get("rowsPublished") or 0, new.get("rowsRejected") or 0
            new["rowsTotal"] = int(published) + int(rejected)
        tables = event.data.get("tables")
        if isinstance(tables, Mapping):
            new["report"] = {
                str(table): int(rows)
                for table, rows in tables.items()
                if isinstance(rows, int) and not isinstance(rows, bool)
            }
        report_path = event.str_field("report_path")
        if report_path:
            new["reportPath"] = report_path
        mirrored = event.data.get("mirror")
        if isinstance(mirrored, Mapping):  # a mirror run: what its release changed
            new["mirror"] = {name: int(mirrored[k]) for k, name in MIRROR_FIGURES.items()
                             if isinstance(mirrored.get(k), int)}
            if mirrored.get("held_back_reason"):
                new["mirror"]["heldBackReason"] = str(mirrored["held_back_reason"])[:500]
        new["completionTime"] = format_time(event.ts)
        written, rejected = new.get("rowsWritten", 0), new.get("rowsRejected", 0)
        new["progress"] = f"done: rows written {written}, rejected {rejected}"
        duration = event.data.get("duration_s")
        took = f" in {duration:.1f}s" if isinstance(duration, int | float) else ""
        new = _with_phase(
            new,
            Phase.SUCCEEDED,
            message=f"{written} rows written, {rejected} rows rejected{took}",
            now=now,
        )
    elif kind == "failed":
        stage = event.str_field("stage") or "ingest"
        reason = event.str_field("reason") or "unknown error"
        new["completionTime"] = format_time(event.ts)
        new = _with_phase(
            new,
            Phase.FAILED,
            message=f"{stage} failed: {reason}",
            now=now,
            failure_reason=_STAGE_REASONS.get(stage, "IngestFailed"),
        )
    else:  # pragma: no cover - parse_event admits only the types above
        return None
    return _change(status, new)
