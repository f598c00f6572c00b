"""The work behind the handlers: launch runs, follow their Jobs, apply the pipeline's events.

Every status write goes through ``Kube.update_status`` (read, compute with the pure functions of
``status``, patch with the resourceVersion as precondition), so the kopf handlers and the Kafka
consumer thread can update the same IngestRequest concurrently.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from . import job_failures, metrics, pod_health
from . import status as st
from .config import OperatorConfig
from .history import history_limits, prune_scheduled_jobs
from .ingest_events import IngestEvent
from .kube import ApiError, Kube
from .manifests import (
    ANNOTATION_IR,
    ANNOTATION_RERUN,
    build_cronjob,
    build_job,
    cronjob_name,
    ingest_id,
    is_forced,
    job_name,
    parse_ingest_id,
    run_ingest_id,
)
from .models import (
    KIND,
    IngestRequestRef,
    IngestRequestSpec,
    JobView,
    check_credentials_policy,
    fetcher_resources,
)
from .stopping import deleting as _deleting
from .stopping import owned_by as _owned_by
from .stopping import stop_children
from .urls import InvalidSpecError, redact

__all__ = ["IngestService", "RetryLater"]

logger = logging.getLogger(__name__)


class RetryLater(Exception):
    """The resource cannot be reconciled yet (the handler turns it into kopf.TemporaryError)."""

    def __init__(self, message: str, delay: float = 10.0) -> None:
        super().__init__(message)
        self.delay = delay


def _status(body: Mapping[str, Any]) -> dict[str, Any]:
    return dict(body.get("status") or {})


def _generation(body: Mapping[str, Any]) -> int:
    return int((body.get("metadata") or {}).get("generation") or 0)


#: Failed reason of a run whose Job name is held by a Job of another object.
JOB_NAME_TAKEN = "JobNameTaken"


def _taken_by(job: Mapping[str, Any], ref: IngestRequestRef) -> str | None:
    """Who holds the name of a Job that is not ``ref``'s, when it will not go away by itself:
    a Job of another IngestRequest, or of no IngestRequest at all. None when it may be one of
    an older IngestRequest of the same name, awaiting garbage collection."""
    meta = job.get("metadata") or {}
    owner = (meta.get("annotations") or {}).get(ANNOTATION_IR)
    if owner is not None and owner != ref.name:
        return f"IngestRequest {owner}"
    owners = meta.get("ownerReferences") or []
    if not any(o.get("kind", KIND) == KIND for o in owners):
        kinds = ", ".join(f"{o.get('kind')} {o.get('name')}" for o in owners)
        return kinds or "no owner"
    return None


def _failed_reason(status: Mapping[str, Any]) -> str | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            return cond.get("reason")
    return None


_PLACEMENT = ("imagePullSecrets", "nodeSelector", "tolerations", "affinity", "priorityClassName")


def _container(cronjob_spec: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a spec or template change may alter in a CronJob's Jobs (the server adds
    defaults)."""
    job = (cronjob_spec.get("jobTemplate") or {}).get("spec") or {}
    pod = (job.get("template") or {}).get("spec") or {}
    container = (pod.get("containers") or [{}])[0]
    env = [(var.get("name"), var.get("value")) for var in container.get("env") or []]
    return (
        job.get("backoffLimit"),
        job.get("activeDeadlineSeconds"),
        job.get("podFailurePolicy"),
        container.get("image"),
        container.get("args"),
        env,
        *(pod.get(key) or None for key in _PLACEMENT),
        cronjob_spec.get("successfulJobsHistoryLimit"),
        cronjob_spec.get("failedJobsHistoryLimit"),
    )


class IngestService:
    def __init__(
        self, *, kube: Kube, config: OperatorConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.kube = kube
        self.config = config
        self._clock = clock

    def _now(self) -> str:
        return st.format_time(self._clock())

    def _accepted_spec(self, ref: IngestRequestRef, body: Mapping[str, Any]) -> IngestRequestSpec:
        """The spec, if the operator may act on it now; else InvalidSpecError. Reads the
        credentialsSecret's labels (molstream.models.check_credentials_policy)."""
        spec = IngestRequestSpec.parse(
            body.get("spec"), allowed_hosts=self.config.allowed_hosts,
            pinned_known_hosts=self.config.known_hosts,
        )
        check_credentials_policy(
            spec, allow_insecure=self.config.allow_insecure_credentials,
            secret_labels=lambda name: self.kube.secret_labels(ref.namespace, name),
        )
        # above the administrator's cap, a request above its limit
        fetcher_resources(self.config.fetcher.resources, spec, self.config.fetcher_max_resources)
        return spec

    # --- IngestRequest created, resumed or changed ---------------------------------------------

    def reconcile(self, body: Mapping[str, Any]) -> None:
        """Bring the children of one IngestRequest in line with its spec and annotations."""
        ref = IngestRequestRef.from_body(body)
        try:
            spec = self._accepted_spec(ref, body)
        except InvalidSpecError as exc:
            self._refuse(ref, body, str(exc))
            return

        try:
            if spec.schedule:
                self._ensure_cronjob(
                    ref, spec, _status(body).get("loadedSources"),
                    history=history_limits(body.get("spec")),
                )
                # one made under an older name (before dotted names got their hash)
                self._remove_cronjob(ref, body, keep=cronjob_name(ref.name))
            else:
                self._remove_cronjob(ref, body)
        except ApiError as exc:
            if exc.status in (400, 403, 422):
                self._reject(ref, "CronJobRejected", f"CronJob refused by the API server: {exc}")
                return
            raise

        rerun = str(
            ((body.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_RERUN, "")
        )
        now = self._now()
        read, change = self.kube.update_status(
            ref.namespace, ref.name, lambda b: self._plan(b, spec, rerun, now)
        )
        if read is None:
            return
        current = change.status if change else _status(read)
        self._ensure_job(IngestRequestRef.from_body(read), spec, current)

    def _refuse(self, ref: IngestRequestRef, body: Mapping[str, Any], error: str) -> None:
        """The spec is refused: stop what runs for it (whatever spec.suspend says, since
        nothing of a refused spec may run), then Failed/InvalidSpec saying what was stopped."""
        stopped = stop_children(self.kube, ref, body)
        if stopped:
            error += f"; stopped until the spec is accepted: {', '.join(stopped)}"
        logger.warning("IngestRequest %s/%s refused: %s", ref.namespace, ref.name, error)
        now = self._now()
        self.kube.update_status(
            ref.namespace,
            ref.name,
            lambda b: st.invalid_spec(_status(b), error=error, generation=_generation(b), now=now),
        )

    def _plan(
        self, body: Mapping[str, Any], spec: IngestRequestSpec, rerun: str, now: str
    ) -> st.Change | None:
        ref = IngestRequestRef.from_body(body)
        current = _status(body)
        generation = _generation(body)
        run = int(current.get("run") or 0)
        recorded = current.get("rerunToken")
        # A run that never got its Job (spec refused by us or by the API server) is retried
        # when the spec changes or the operator restarts.
        failed_before_start = any(
            cond.get("type") == "Failed"
            and cond.get("status") == "True"
            and cond.get("reason") in st.NOT_STARTED_REASONS
            for cond in current.get("conditions") or []
        )
        rerun_asked = recorded is not None and rerun != recorded
        first_run = run == 0 and not spec.schedule
        fixed = failed_before_start and not spec.schedule

        base = dict(current, observedGeneration=generation, rerunToken=rerun)
        if spec.schedule:
            base["cronJobName"] = cronjob_name(ref.name)
        else:
            base.pop("cronJobName", None)

        if first_run or rerun_asked or fixed:
            taken = self._name_taken(ref, job_name(ref.name, run + 1))
            if taken:  # no run: the name is not ours, and will not become free by itself
                return st.set_ready(
                    base, reason=JOB_NAME_TAKEN, message=taken, generation=generation, now=now,
                    ready=False, phase_message=taken, fail=JOB_NAME_TAKEN,
                )
            run += 1
            change = st.new_run(
                base,
                run=run,
                ingest_id=run_ingest_id(ref, run),
                job_name=job_name(ref.name, run),
                start_time=now,
                now=now,
            )
            logger.info(
                "IngestRequest %s/%s: run %d (%s)",
                ref.namespace,
                ref.name,
                run,
                "rerun asked" if rerun_asked else "first run",
            )
            return change

        if spec.schedule:
            cronjob = cronjob_name(ref.name)
            message = f"CronJob {cronjob} runs on schedule {spec.schedule!r}" + (
                " (suspended)" if spec.suspend else ""
            )
            waiting = None if current.get("jobName") else "waiting for the first scheduled run"
            change = st.set_ready(
                base,
                reason="CronJobCreated",
                message=message,
                generation=generation,
                now=now,
                phase_message=waiting,
            )
        elif _failed_reason(current) == JOB_NAME_TAKEN:
            change = None  # the run never started (its Job's name is taken): it stays so
        else:
            change = st.set_ready(
                base,
                reason="JobCreated",
                message=f"Job {current.get('jobName')} created",
                generation=generation,
                now=now,
            )
        if change is None and base != current:
            change = st.Change(base)
        return change

    def _name_taken(self, ref: IngestRequestRef, name: str) -> str | None:
        """Why the Job ``name`` cannot be ``ref``'s, when a Job of another object holds it."""
        existing = self.kube.get_job(ref.namespace, name)
        if existing is None or _owned_by(existing, ref.uid):
            return None
        holder = _taken_by(existing, ref)
        if holder is None:
            return None
        return (
            f"Job name {name} is taken by a Job of another object ({holder}): no run started "
            "(delete that Job, then annotate molstream.io/rerun to try again)"
        )

    def _reject(self, ref: IngestRequestRef, reason: str, message: str) -> None:
        message = redact(message)
        logger.warning("IngestRequest %s/%s: %s", ref.namespace, ref.name, message)
        now = self._now()
        self.kube.update_status(
            ref.namespace,
            ref.name,
            lambda b: st.set_ready(
                _status(b),
                reason=reason,
                message=message,
                generation=_generation(b),
                now=now,
                ready=False,
                phase_message=message,
                fail=reason,
            ),
        )

    def _ensure_job(
        self, ref: IngestRequestRef, spec: IngestRequestSpec, current: Mapping[str, Any]
    ) -> None:
        """Create the Job of the current counter run if it is missing; keep its suspend flag."""
        run = int(current.get("run") or 0)
        if run == 0 or current.get("jobName") != job_name(ref.name, run):
            return  # no counter run, or a CronJob run is current
        name = job_name(ref.name, run)
        existing = self.kube.get_job(ref.namespace, name)
        if existing is None:
            if current.get("phase") != st.Phase.PENDING:
                return  # the run went on and its Job is gone (deleted by a person or a TTL)
            # The id the status recorded when the run started (an operator of an older
            # version may have chosen it).
            manifest = build_job(
                ref,
                spec,
                self.config,
                run=run,
                ingest=current.get("ingestId"),
                loaded=current.get("loadedSources") or (),
                force=is_forced(current.get("rerunToken")),
            )
            try:
                created = self.kube.create(manifest)
            except ApiError as exc:
                if exc.status in (400, 403, 422):
                    self._reject(ref, "JobRejected", f"Job refused by the API server: {exc}")
                    return
                raise
            if created is not None:
                metrics.JOBS_CREATED.labels("job").inc()
                logger.info("IngestRequest %s/%s: created Job %s", ref.namespace, ref.name, name)
                return
            existing = self.kube.get_job(ref.namespace, name)
            if existing is None:
                raise RetryLater(f"Job {name} was created and deleted meanwhile", delay=1)
        if not _owned_by(existing, ref.uid):
            taken = self._name_taken(ref, name)
            if taken:  # said once in the status, never "created", no retry loop
                self._reject(ref, JOB_NAME_TAKEN, taken)
                return
            raise RetryLater(
                f"Job {name} belongs to another object (an older IngestRequest of the same "
                "name, awaiting garbage collection?)"
            )
        job = JobView.from_body(existing)
        if (
            not job.complete
            and not job.failure_reason
            and bool((existing.get("spec") or {}).get("suspend")) != spec.suspend
        ):
            self.kube.patch_job(ref.namespace, name, {"spec": {"suspend": spec.suspend}})
            logger.info(
                "IngestRequest %s/%s: Job %s %s",
                ref.namespace,
                ref.name,
                name,
                "suspended" if spec.suspend else "resumed",
            )

    def _ensure_cronjob(
        self,
        ref: IngestRequestRef,
        spec: IngestRequestSpec,
        loaded: Any = None,
        *,
        history: tuple[int, int],
    ) -> None:
        manifest = build_cronjob(ref, spec, self.config, loaded=loaded or (), history=history)
        name = manifest["metadata"]["name"]
        existing = self.kube.get_cronjob(ref.namespace, name)
        if existing is None:
            if self.kube.create(manifest) is not None:
                metrics.JOBS_CREATED.labels("cronjob").inc()
                logger.info(
                    "IngestRequest %s/%s: created CronJob %s", ref.namespace, ref.name, name
                )
                return
            existing = self.kube.get_cronjob(ref.namespace, name)
            if existing is None:
                raise RetryLater(f"CronJob {name} was created and deleted meanwhile", delay=1)
        if not _owned_by(existing, ref.uid):
            raise RetryLater(f"CronJob {name} belongs to another object")
        wanted, have = manifest["spec"], existing.get("spec") or {}
        if any(have.get(key) != wanted[key] for key in ("schedule", "suspend")) or _container(
            have
        ) != _container(wanted):
            self.kube.patch_cronjob(ref.namespace, name, {"spec": wanted})
            logger.info("IngestRequest %s/%s: updated CronJob %s", ref.namespace, ref.name, name)

    def _remove_cronjob(
        self, ref: IngestRequestRef, body: Mapping[str, Any], *, keep: str | None = None
    ) -> None:
        name = _status(body).get("cronJobName")
        if not name or name == keep:
            return
        existing = self.kube.get_cronjob(ref.namespace, name)
        if existing is not None and _owned_by(existing, ref.uid):
            self.kube.delete_cronjob(ref.namespace, name)
            logger.info(
                "IngestRequest %s/%s: schedule removed, deleted CronJob %s",
                ref.namespace,
                ref.name,
                name,
            )

    # --- a fetcher Job changed -----------------------------------------------------------------

    def on_job(self, job_body: Mapping[str, Any]) -> None:
        job = JobView.from_body(job_body)
        if not job.ingestrequest or not job.namespace:
            return
        if self._revoked(job, job_body):
            return
        now = self._now()
        said = None  # the fetcher's own words, when the Job failed on its permanent error
        if job_failures.pod_failure_policy_failed(job_body):
            said = job_failures.fetcher_error(self._pods(job.namespace, job.name))

        def compute(body: Mapping[str, Any]) -> st.Change | None:
            current = _status(body)
            uid = (body.get("metadata") or {}).get("uid", "")
            if not job.scheduled and not _owned_by(job_body, uid):
                return None  # a Job of an older object of the same name
            if _deleting(job_body) and job.name != current.get("jobName"):
                return None  # going away before it became a run (e.g. stopped by _revoked)
            seen = job_failures.explain(job, job_body, current, fetcher_message=said)
            if (body.get("spec") or {}).get("schedule") and st.is_newer_scheduled_run(current, job):
                started = self._scheduled_run(body, job, now)
                return started.then(st.apply_job(started.status, seen, now=now))
            return pod_health.keep_saying_why(st.apply_job(current, seen, now=now))

        read, _ = self.kube.update_status(job.namespace, job.ingestrequest, compute)
        if read is not None and job.scheduled and (job.complete or job.failure_reason):
            spec = read.get("spec") or {}
            deleted = prune_scheduled_jobs(
                self.kube, job.namespace, job.ingestrequest, history_limits(spec)
            )
            if deleted:
                logger.info(
                    "IngestRequest %s/%s: deleted finished Jobs beyond the history limits: %s",
                    job.namespace, job.ingestrequest, ", ".join(deleted),
                )

    def _revoked(self, job: JobView, job_body: Mapping[str, Any]) -> bool:
        """Check again, when a Job is about to run, what reconcile checked when the spec was
        accepted: a scheduled run starts long after that, and the credentialsSecret's opt-in
        label may have been removed since. If the spec is refused now, stop the Job and the
        CronJob (``_refuse``) and say why; True then."""
        spec_of_job = job_body.get("spec") or {}
        if job.complete or job.failure_reason or spec_of_job.get("suspend") or _deleting(
            job_body
        ):
            return False  # nothing runs, or will run, in it
        body = self.kube.get_ingestrequest(job.namespace, job.ingestrequest or "")
        if body is None:
            return False
        ref = IngestRequestRef.from_body(body)
        owners = (job_body.get("metadata") or {}).get("ownerReferences") or []
        crons = {cronjob_name(ref.name), _status(body).get("cronJobName")}
        if not _owned_by(job_body, ref.uid) and not any(
            o.get("kind") == "CronJob" and o.get("name") in crons for o in owners
        ):
            return False  # not a run of this object
        try:
            self._accepted_spec(ref, body)
        except InvalidSpecError as exc:
            self._refuse(ref, body, str(exc))
            return True
        return False

    def _pods(self, namespace: str, job: str) -> list[dict[str, Any]]:
        try:
            found = self.kube.request(
                "GET",
                f"/api/v1/namespaces/{quote(namespace, safe='')}/pods",
                query={"labelSelector": f"batch.kubernetes.io/job-name={job}"},
            )
        except ApiError as exc:
            logger.warning("Pods of Job %s/%s not listed: %s", namespace, job, exc)
            return []
        return list(found.get("items") or [])

    # --- a fetcher Pod changed -----------------------------------------------------------------

    def on_pod(self, pod_body: Mapping[str, Any]) -> None:
        """Say in the status why the current run's fetcher Pod cannot start, or that it did."""
        pod = pod_health.read_pod(pod_body)
        if not pod.ingestrequest or not pod.job or not pod.namespace or pod.deleting:
            return
        now = self._now()
        self.kube.update_status(
            pod.namespace,
            pod.ingestrequest,
            lambda body: pod_health.apply_pod(_status(body), pod, now=now),
        )

    def _scheduled_run(self, body: Mapping[str, Any], job: JobView, now: str) -> st.Change:
        ref = IngestRequestRef.from_body(body)
        return st.new_run(
            _status(body),
            ingest_id=ingest_id(ref.namespace, ref.name, job.name),
            job_name=job.name,
            start_time=job.creation_time or now,
            now=now,
            last_schedule_time=job.schedule_time or job.creation_time or now,
        )

    # --- an event from the fetcher or the worker -----------------------------------------------

    def on_event(self, event: IngestEvent) -> str:
        """Apply one pipeline event; returns what happened (``applied`` or why it was ignored)."""
        parts = parse_ingest_id(event.ingest_id)
        if parts is None:
            return "ignored: not an IngestRequest ingest id"
        namespace, name, run = parts
        if self.config.namespaces and namespace not in self.config.namespaces:
            return "ignored: namespace not served"
        now = self._now()

        def compute(body: Mapping[str, Any]) -> st.Change | None:
            current = _status(body)
            if current.get("ingestId") == event.ingest_id:
                return st.apply_event(current, event, now=now)
            if not (body.get("spec") or {}).get("schedule") or not run.startswith(
                cronjob_name(name) + "-"
            ):
                return None
            # A CronJob run (the run is its Job's name) whose Job this operator has not seen yet.
            job_body = self.kube.get_job(namespace, run)
            if job_body is None:
                return None
            job = JobView.from_body(job_body)
            if job.ingestrequest != name or not st.is_newer_scheduled_run(current, job):
                return None
            started = self._scheduled_run(body, job, now)
            return started.then(st.apply_event(started.status, event, now=now))

        try:
            read, change = self.kube.update_status(namespace, name, compute)
        except ApiError as exc:
            if exc.status in (403, 404):
                return f"ignored: {exc.status} from the API server"
            raise
        if read is None:
            return "ignored: no such IngestRequest"
        if change and change.status.get("loadedSources") != _status(read).get("loadedSources"):
            self._loaded_changed(read, change.status)
        return "applied" if change else "ignored: stale or no change"

    def _loaded_changed(self, body: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        """A run loaded a file: the CronJob's next runs must know it (its template carries
        status.loadedSources). Counter runs read the status when their Job is made."""
        if not (body.get("spec") or {}).get("schedule"):
            return
        ref = IngestRequestRef.from_body(body)
        try:
            # (never resume a CronJob stopped for a refused Secret)
            spec = self._accepted_spec(ref, body)
            self._ensure_cronjob(
                ref, spec, status.get("loadedSources"), history=history_limits(body.get("spec"))
            )
        except (InvalidSpecError, ApiError, RetryLater) as exc:
            # The next reconcile (spec change, operator restart) tries again.
            logger.warning(
                "IngestRequest %s/%s: CronJob not updated with the loaded file: %s",
                ref.namespace,
                ref.name,
                redact(str(exc)),
            )
