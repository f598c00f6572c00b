"""Pure builders of the fetcher's Job and CronJob, their names, labels and ingest ids.

One run of an IngestRequest is one Job. Its ingest id, which keys every message of the run on
Kafka, is ``<namespace>.<name>.<run>``:

* runs the operator launches (the first one, and one per new ``molstream.io/rerun`` annotation)
  use the counter ``status.run``; the Job is ``<name>-run-<run>``, so a restarted operator finds
  the Job of a run instead of creating a second one;
* runs a CronJob launches use the Job's name (``<name>-cron-<minutes>``): the Pod reads it from
  its ``job-name`` label through the downward API (env ``MOLSTREAM_JOB_NAME``), and Kubernetes
  expands ``MOLSTREAM_INGEST_ID`` = ``<namespace>.<name>.$(MOLSTREAM_JOB_NAME)``.

Credentials never appear here: the container receives ``MOLSTREAM_SOURCE_USERNAME`` and
``MOLSTREAM_SOURCE_PASSWORD`` through ``secretKeyRef``. For an sftp:// source the password is
optional, and the Secret's ``ssh-privatekey`` and ``passphrase`` (both optional, the
kubernetes.io/ssh-auth type's key) are mounted as files, read-only, never put in the environment.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import kopf

from .config import OperatorConfig
from .models import IngestRequestRef, IngestRequestSpec, Mode, fetcher_resources

__all__ = [
    "ANNOTATION_INGEST_ID",
    "ANNOTATION_IR",
    "ANNOTATION_RERUN",
    "ANNOTATION_SCHEDULED_AT",
    "FAILED_JOBS_HISTORY_LIMIT",
    "FETCHER_EXIT_PERMANENT",
    "LABEL_IR",
    "LABEL_RUN",
    "LABEL_SCHEDULED",
    "SUCCESSFUL_JOBS_HISTORY_LIMIT",
    "build_cronjob",
    "build_job",
    "cronjob_name",
    "ingest_id",
    "is_forced",
    "job_name",
    "label_value",
    "loaded_sources",
    "parse_ingest_id",
    "pod_failure_policy",
    "run_ingest_id",
]

LABEL_IR = "molstream.io/ingestrequest"
LABEL_RUN = "molstream.io/run"
LABEL_SCHEDULED = "molstream.io/scheduled"
ANNOTATION_IR = "molstream.io/ingestrequest-name"
ANNOTATION_INGEST_ID = "molstream.io/ingest-id"
#: Set it to any new value to ask for a new run:
#: ``kubectl annotate ir NAME molstream.io/rerun=$(date +%s) --overwrite``.
ANNOTATION_RERUN = "molstream.io/rerun"
#: Set by the CronJob controller (Kubernetes 1.28+) on the Jobs it creates.
ANNOTATION_SCHEDULED_AT = "batch.kubernetes.io/cronjob-scheduled-timestamp"

ENV_INGEST_ID = "MOLSTREAM_INGEST_ID"
ENV_JOB_NAME = "MOLSTREAM_JOB_NAME"
ENV_USERNAME = "MOLSTREAM_SOURCE_USERNAME"
ENV_PASSWORD = "MOLSTREAM_SOURCE_PASSWORD"
ENV_METRICS_PORT = "MOLSTREAM_METRICS_PORT"
#: The source URL, as spec.url gives it: in the environment, not in the arguments (a
#: presigned URL's signature would show in every process listing of the node and in whatever
#: prints a container's command). The Job itself is readable by those who may read the
#: IngestRequest, whose spec.url it is; status, Events and logs show it redacted.
ENV_SOURCE_URL = "MOLSTREAM_SOURCE_URL"
#: The operator's address policy for the fetchers (molstream.addresses), passed on as is, and
#: the insecure-credentials switch, set only when the IngestRequest and the operator agree.
ENV_ADDRESS_POLICY = (
    "MOLSTREAM_ALLOWED_NETWORKS",
    "MOLSTREAM_INTERNAL_HOSTS",
    "MOLSTREAM_DENIED_NETWORKS",
)
ENV_INSECURE_CREDENTIALS = "MOLSTREAM_ALLOW_INSECURE_CREDENTIALS"
#: sftp:// sources: the request's known_hosts lines, the operator's own (they win for the hosts
#: they name), and the files of the private key and its passphrase.
ENV_SOURCE_KNOWN_HOSTS = "MOLSTREAM_SOURCE_KNOWN_HOSTS"
ENV_KNOWN_HOSTS = "MOLSTREAM_KNOWN_HOSTS"
ENV_SSH_KEY_FILE = "MOLSTREAM_SOURCE_SSH_KEY_FILE"
ENV_SSH_PASSPHRASE_FILE = "MOLSTREAM_SOURCE_SSH_PASSPHRASE_FILE"
SSH_VOLUME = "source-ssh"
SSH_DIR = "/var/run/molstream/source-ssh"
SSH_KEY = "ssh-privatekey"  # the key of a kubernetes.io/ssh-auth Secret
SSH_PASSPHRASE = "passphrase"
ENV_METRICS_LINGER = "MOLSTREAM_METRICS_LINGER_S"
#: The files the IngestRequest loaded before (status.loadedSources, JSON): the fetcher ends a
#: run whose source is one of them as Unchanged. MOLSTREAM_FORCE: a forced rerun's Job.
ENV_LOADED = "MOLSTREAM_SOURCE_LOADED"
ENV_FORCE = "MOLSTREAM_FORCE"
#: A rerun whose annotation value starts with this ingests even an unchanged source:
#: ``kubectl annotate ir NAME molstream.io/rerun=force-$(date +%s) --overwrite``.
FORCE_PREFIX = "force"
_LOADED_KEYS = ("url", "etag", "lastModified", "size", "sha256", "release")
_RESERVED_ENV = frozenset(
    {
        ENV_INGEST_ID,
        ENV_JOB_NAME,
        ENV_USERNAME,
        ENV_PASSWORD,
        ENV_SOURCE_KNOWN_HOSTS,
        "MOLSTREAM_SOURCE_KNOWN_HOSTS_FILE",
        ENV_KNOWN_HOSTS,
        ENV_SSH_KEY_FILE,
        ENV_SSH_PASSPHRASE_FILE,
        "MOLSTREAM_SOURCE_USERNAME_FILE",
        "MOLSTREAM_SOURCE_PASSWORD_FILE",
        ENV_LOADED,
        ENV_FORCE,
        "MOLSTREAM_KAFKA_BOOTSTRAP",
        "MOLSTREAM_ALLOWED_HOSTS",
        "MOLSTREAM_TOPIC_PREFIX",
        ENV_SOURCE_URL,
        *ENV_ADDRESS_POLICY,
        ENV_INSECURE_CREDENTIALS,
    }
)
# Reserved as well when the operator sets them (OperatorConfig.fetcher_metrics_port): the
# port must be the container port the PodMonitor scrapes.
_METRICS_ENV = frozenset({ENV_METRICS_PORT, ENV_METRICS_LINGER})

#: The fetcher's exit status for a permanent error (molstream.cli.EXIT_PERMANENT: a wrong
#: password, no such file, an address refused, an invalid file...): the Job fails at once.
FETCHER_EXIT_PERMANENT = 3
#: Finished Jobs of scheduled runs kept per IngestRequest when the spec says nothing (CronJob's
#: own defaults): older ones are deleted.
SUCCESSFUL_JOBS_HISTORY_LIMIT = 3
FAILED_JOBS_HISTORY_LIMIT = 1

_JOB_NAME_MAX = 63  # the Job's name is also the value of the Pod label job-name
_CRONJOB_NAME_MAX = 52  # the CronJob controller appends -<11 digits>
_NOT_LABEL = re.compile(r"[^a-z0-9.\-]")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _fit(base: str, suffix: str, limit: int, *, original: str) -> str:
    """``base + suffix`` within ``limit`` characters, a hash keeping shortened names distinct."""
    if len(base) + len(suffix) <= limit:
        return base + suffix
    keep = limit - len(suffix) - 9
    return f"{base[:keep].rstrip('-')}-{_digest(original)}{suffix}"


def _dns_label_base(name: str) -> str:
    """``name`` without dots (IngestRequest names are DNS subdomains; Job names become ingest id
    parts). A name that had to change carries a hash of the original, so that ``team.x`` and
    ``team-x`` never get the same Job (``_fit`` does the same for a name it shortens)."""
    if "." not in name:
        return name
    return f"{name.replace('.', '-')}-{_digest(name)}"


def job_name(name: str, run: int) -> str:
    """Name of the Job of counter run ``run``: ``<name>-run-<run>``, at most 63 characters."""
    return _fit(_dns_label_base(name), f"-run-{run}", _JOB_NAME_MAX, original=name)


def cronjob_name(name: str) -> str:
    """Name of the CronJob: ``<name>-cron``, at most 52 characters."""
    return _fit(_dns_label_base(name), "-cron", _CRONJOB_NAME_MAX, original=name)


def label_value(name: str) -> str:
    """``name`` as a label value (at most 63 characters, alphanumeric at both ends)."""
    value = _NOT_LABEL.sub("-", name.lower())
    if len(value) > 63:
        value = f"{value[:54]}-{_digest(name)}"
    return value.strip("-.") or _digest(name)


def ingest_id(namespace: str, name: str, run: int | str) -> str:
    return f"{namespace}.{name}.{run}"


def run_ingest_id(ref: IngestRequestRef, run: int) -> str:
    """The ingest id of counter run ``run``: ``namespace.name.run-uid8``. The object's uid
    (its first 8 hex digits) keeps an IngestRequest deleted and created again under the same
    name from reusing the ids of the first one, which the worker has already completed (their
    batches would be skipped as delivered twice and the run never reported)."""
    return ingest_id(ref.namespace, ref.name, f"{run}-{ref.uid[:8]}" if ref.uid else run)


def parse_ingest_id(value: str) -> tuple[str, str, str] | None:
    """``(namespace, name, run)`` of an ingest id, or None when it is not one of ours.

    Namespaces and run suffixes have no dots; names may have some.
    """
    namespace, sep, rest = value.partition(".")
    name, sep2, run = rest.rpartition(".")
    if not (sep and sep2 and namespace and name and run):
        return None
    return namespace, name, run


def _labels(ref: IngestRequestRef) -> dict[str, str]:
    value = label_value(ref.name)
    return {
        "app.kubernetes.io/name": "molstream",
        "app.kubernetes.io/instance": value,
        "app.kubernetes.io/component": "fetcher",
        "app.kubernetes.io/part-of": "molstream",
        "app.kubernetes.io/managed-by": "molstream-operator",
        LABEL_IR: value,
    }


def _escape(arg: str) -> str:
    # Kubernetes expands $(VAR) in args; a literal $ is written $$.
    return arg.replace("$", "$$")


def _env(
    ref: IngestRequestRef,
    spec: IngestRequestSpec,
    config: OperatorConfig,
    *,
    ingest: str | None,
    loaded: Sequence[Mapping[str, Any]] = (),
    force: bool = False,
) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    if ingest is None:  # CronJob run: the ingest id follows the Job's name
        env.append(
            {
                "name": ENV_JOB_NAME,
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['job-name']"}},
            }
        )
        env.append(
            {
                "name": ENV_INGEST_ID,
                "value": ingest_id(_escape(ref.namespace), _escape(ref.name), f"$({ENV_JOB_NAME})"),
            }
        )
    else:
        env.append({"name": ENV_INGEST_ID, "value": _escape(ingest)})
    if config.kafka_bootstrap:
        env.append({"name": "MOLSTREAM_KAFKA_BOOTSTRAP", "value": _escape(config.kafka_bootstrap)})
    env.append({"name": "MOLSTREAM_TOPIC_PREFIX", "value": _escape(config.topic_prefix)})
    env.append({"name": ENV_SOURCE_URL, "value": _escape(spec.url)})
    if config.allowed_hosts:  # the fetcher checks every redirect against the same list
        env.append({"name": "MOLSTREAM_ALLOWED_HOSTS",
                    "value": _escape(",".join(config.allowed_hosts))})
    for var, items in zip(
        ENV_ADDRESS_POLICY,
        (config.allowed_networks, config.internal_hosts, config.denied_networks),
        strict=True,
    ):
        if items:
            env.append({"name": var, "value": _escape(",".join(items))})
    if spec.credentials_secret and spec.allow_insecure_credentials and (
        config.allow_insecure_credentials
    ):
        env.append({"name": ENV_INSECURE_CREDENTIALS, "value": "true"})
    if config.fetcher_metrics_port is not None:
        env.append({"name": ENV_METRICS_PORT, "value": str(config.fetcher_metrics_port)})
        env.append({"name": ENV_METRICS_LINGER, "value": f"{config.fetcher_metrics_linger_s:g}"})
    if spec.credentials_secret:
        for var, key in ((ENV_USERNAME, "username"), (ENV_PASSWORD, "password")):
            env.append(
                {
                    "name": var,
                    "valueFrom": {
                        "secretKeyRef": {
                            "name": spec.credentials_secret,
                            "key": key,
                            # sftp: a private key may stand in for the password
                            "optional": spec.sftp and key == "password",
                        }
                    },
                }
            )
        if spec.sftp:
            env.append({"name": ENV_SSH_KEY_FILE, "value": f"{SSH_DIR}/{SSH_KEY}"})
            env.append({"name": ENV_SSH_PASSPHRASE_FILE, "value": f"{SSH_DIR}/{SSH_PASSPHRASE}"})
    if spec.sftp and spec.known_hosts:
        env.append({"name": ENV_SOURCE_KNOWN_HOSTS, "value": _escape(spec.known_hosts)})
    if spec.sftp and config.known_hosts:
        env.append({"name": ENV_KNOWN_HOSTS, "value": _escape(config.known_hosts)})
    if loaded_json := loaded_sources(loaded):
        env.append({"name": ENV_LOADED, "value": _escape(loaded_json)})
    if force:
        env.append({"name": ENV_FORCE, "value": "true"})
    reserved = _RESERVED_ENV
    if config.fetcher_metrics_port is not None:
        reserved |= _METRICS_ENV
    for extra in config.fetcher.env:
        if isinstance(extra, dict) and extra.get("name") not in reserved:
            env.append(copy.deepcopy(extra))
    return env


def loaded_sources(loaded: Sequence[Mapping[str, Any]] | None) -> str:
    """status.loadedSources as the fetcher reads it (MOLSTREAM_SOURCE_LOADED); "" for none."""
    items = [
        {key: item[key] for key in _LOADED_KEYS if item.get(key) is not None}
        for item in loaded or ()
        if isinstance(item, Mapping) and isinstance(item.get("url"), str)
    ]
    return json.dumps(items, separators=(",", ":"), sort_keys=True) if items else ""


def is_forced(rerun_token: object) -> bool:
    """Whether the molstream.io/rerun value acted on asks for a forced run."""
    return isinstance(rerun_token, str) and rerun_token.strip().lower().startswith(FORCE_PREFIX)


def _format_args(ref: IngestRequestRef, spec: IngestRequestSpec) -> list[str]:
    """spec.format, spec.columns, spec.release and a mirror's key as the fetcher's options,
    each ``--name=value`` so that a value starting with a dash stays a value."""
    args = []
    if spec.delimiter is not None:
        args.append(f"--delimiter={spec.delimiter}")
    args += [f"--null-token={_escape(token)}" for token in spec.null_tokens]
    if spec.member is not None:
        args.append(f"--member={_escape(spec.member)}")
    args += [f"--column={_escape(source)}={column}" for source, column in spec.columns]
    if spec.release is not None:
        args.append(f"--release={spec.release}")
    if spec.mode is Mode.MIRROR:  # an IngestRequest mirrors one source, whatever its URL
        args.append(f"--mirror-key={ref.namespace}/{ref.name}")
    return args


def _pod_template(
    ref: IngestRequestRef,
    spec: IngestRequestSpec,
    config: OperatorConfig,
    *,
    ingest: str | None,
    labels: dict[str, str],
    loaded: Sequence[Mapping[str, Any]] = (),
    force: bool = False,
) -> dict[str, Any]:
    template = config.fetcher
    args = [  # (the URL is in the environment: ENV_SOURCE_URL)
        "fetch",
        "--ingest-id",
        _escape(ingest) if ingest is not None else f"$({ENV_INGEST_ID})",
        "--batch-size",
        str(spec.batch_size),
        "--mode",
        spec.mode.cli,
        *_format_args(ref, spec),
    ]
    container: dict[str, Any] = {
        "name": "fetcher",
        "image": template.image,
        "imagePullPolicy": template.imagePullPolicy,
        "command": ["molstream"],
        "args": args,
        "env": _env(ref, spec, config, ingest=ingest, loaded=loaded, force=force),
        # The chart's, with the IngestRequest's spec.fetcher.resources over them.
        "resources": fetcher_resources(copy.deepcopy(template.resources), spec,
                                       config.fetcher_max_resources),
        # Its last lines (the fetcher's "error: ..." line) when it fails: the Pod's status says
        # why the run failed, for the operator and for `kubectl describe`.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if config.fetcher_metrics_port is not None:
        container["ports"] = [
            {"name": "metrics", "containerPort": config.fetcher_metrics_port, "protocol": "TCP"}
        ]
    if template.securityContext:
        container["securityContext"] = copy.deepcopy(template.securityContext)
    if template.volumeMounts:
        container["volumeMounts"] = copy.deepcopy(template.volumeMounts)
    ssh = spec.sftp and spec.credentials_secret
    if ssh:
        container.setdefault("volumeMounts", []).append(
            {"name": SSH_VOLUME, "mountPath": SSH_DIR, "readOnly": True}
        )
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "containers": [container],
    }
    if template.serviceAccountName:
        pod_spec["serviceAccountName"] = template.serviceAccountName
    if template.podSecurityContext:
        pod_spec["securityContext"] = copy.deepcopy(template.podSecurityContext)
    for key in ("imagePullSecrets", "nodeSelector", "tolerations", "affinity"):
        if value := getattr(template, key):
            pod_spec[key] = copy.deepcopy(value)
    if template.priorityClassName:
        pod_spec["priorityClassName"] = template.priorityClassName
    if template.volumes:
        pod_spec["volumes"] = copy.deepcopy(template.volumes)
    if ssh:
        # Optional keys: a Secret with a password only mounts nothing (its username is still
        # required, through the environment above). Readable by the Pod's group (fsGroup) only.
        pod_spec.setdefault("volumes", []).append(
            {
                "name": SSH_VOLUME,
                "secret": {
                    "secretName": spec.credentials_secret,
                    "optional": True,
                    "defaultMode": 0o440,
                    "items": [{"key": k, "path": k} for k in (SSH_KEY, SSH_PASSPHRASE)],
                },
            }
        )
    # The annotation names the IngestRequest exactly (the label may be shortened): the operator
    # follows the Pods to say why one cannot start (molstream_operator.pod_health).
    return {
        "metadata": {"labels": dict(labels), "annotations": {ANNOTATION_IR: ref.name}},
        "spec": pod_spec,
    }


def pod_failure_policy() -> dict[str, Any]:
    """The fetcher Job's podFailurePolicy: a permanent error fails the Job at once, without
    its retries; a Pod evicted or preempted (DisruptionTarget) is retried without counting
    against backoffLimit. (Needs the Pod's restartPolicy Never.)"""
    return {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": "fetcher",
                    "operator": "In",
                    "values": [FETCHER_EXIT_PERMANENT],
                },
            },
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget",
                                                      "status": "True"}]},
        ]
    }


def build_job(
    ref: IngestRequestRef,
    spec: IngestRequestSpec,
    config: OperatorConfig,
    *,
    run: int,
    ingest: str | None = None,
    loaded: Sequence[Mapping[str, Any]] = (),
    force: bool = False,
) -> dict[str, Any]:
    """The batch/v1 Job of counter run ``run``, owned by the IngestRequest; ``ingest`` is the
    run's ingest id as the status recorded it (default: ``run_ingest_id``); ``loaded`` the
    files loaded before (status.loadedSources), ``force`` to ingest even an unchanged one."""
    ingest = ingest or run_ingest_id(ref, run)
    labels = {**_labels(ref), LABEL_RUN: str(run)}
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(ref.name, run),
            "namespace": ref.namespace,
            "labels": labels,
            "annotations": {ANNOTATION_IR: ref.name, ANNOTATION_INGEST_ID: ingest},
        },
        "spec": {
            "backoffLimit": spec.backoff_limit,
            "activeDeadlineSeconds": spec.active_deadline_seconds,
            "suspend": spec.suspend,
            "ttlSecondsAfterFinished": config.fetcher.ttlSecondsAfterFinished,
            "podFailurePolicy": pod_failure_policy(),
            "template": _pod_template(
                ref, spec, config, ingest=ingest, labels=labels, loaded=loaded, force=force
            ),
        },
    }
    kopf.adopt(job, owner=kopf.Body(ref.owner_body()))
    return job


def build_cronjob(
    ref: IngestRequestRef,
    spec: IngestRequestSpec,
    config: OperatorConfig,
    *,
    loaded: Sequence[Mapping[str, Any]] = (),
    history: tuple[int, int] = (SUCCESSFUL_JOBS_HISTORY_LIMIT, FAILED_JOBS_HISTORY_LIMIT),
) -> dict[str, Any]:
    """The batch/v1 CronJob for ``spec.schedule``, owned by the IngestRequest; its runs are
    given ``loaded`` (status.loadedSources: the operator updates it after each success).
    ``history``: the finished Jobs kept, (successful, failed); the operator prunes to the same
    limits (molstream_operator.history), the TTL does not apply to these Jobs."""
    if not spec.schedule:
        raise ValueError("build_cronjob needs spec.schedule")
    labels = {**_labels(ref), LABEL_SCHEDULED: "true"}
    cronjob: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": cronjob_name(ref.name),
            "namespace": ref.namespace,
            "labels": dict(labels),
            "annotations": {ANNOTATION_IR: ref.name},
        },
        "spec": {
            "schedule": spec.schedule,
            "suspend": spec.suspend,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 300,
            "successfulJobsHistoryLimit": history[0],
            "failedJobsHistoryLimit": history[1],
            "jobTemplate": {
                "metadata": {"labels": dict(labels), "annotations": {ANNOTATION_IR: ref.name}},
                "spec": {
                    "backoffLimit": spec.backoff_limit,
                    "activeDeadlineSeconds": spec.active_deadline_seconds,
                    "podFailurePolicy": pod_failure_policy(),
                    "template": _pod_template(
                        ref, spec, config, ingest=None, labels=labels, loaded=loaded
                    ),
                },
            },
        },
    }
    kopf.adopt(cronjob, owner=kopf.Body(ref.owner_body()))
    return cronjob
