"""Operator settings, from the environment, and the fetcher Job template, from a YAML file.

* ``MOLSTREAM_KAFKA_BOOTSTRAP``: Kafka bootstrap servers, for the fetcher and the event
  consumer (unset: no consumer, the status follows the Jobs only);
* ``MOLSTREAM_KAFKA_SECURITY_PROTOCOL``, ``MOLSTREAM_KAFKA_SASL_*``, ``MOLSTREAM_KAFKA_CA_FILE``,
  ``MOLSTREAM_KAFKA_CERT_FILE``, ``MOLSTREAM_KAFKA_KEY_FILE``, ``MOLSTREAM_KAFKA_CHECK_HOSTNAME``:
  how the event consumer connects (TLS, SASL, mTLS), as the fetcher and the worker do
  (molstream.kafka_security);
* ``MOLSTREAM_TOPIC_PREFIX``: topic prefix, events are read from ``<prefix>.events``
  (default ``molstream``);
* ``MOLSTREAM_ALLOWED_HOSTS``: comma-separated source hosts allowed, ``*.example.org`` too
  (empty: any host);
* ``MOLSTREAM_ALLOWED_NETWORKS``, ``MOLSTREAM_INTERNAL_HOSTS``, ``MOLSTREAM_DENIED_NETWORKS``
  (chart values ``operator.allowedNetworks``, ``operator.internalHosts``,
  ``operator.deniedNetworks``): which addresses the fetchers may connect to, handed to every
  fetcher Job as they are (molstream.addresses): comma-separated CIDRs that may be reached
  although not public, host names (``*.example.org`` too) that may resolve to non-public
  addresses (the chart's demo FTP server, an in-cluster mirror), and CIDRs always refused
  (the cluster's Pod and Service ranges when they are public addresses; denied wins). Empty
  (the default): every loopback, link-local (cloud metadata), private, CGNAT... address is
  refused;
* ``MOLSTREAM_ALLOW_INSECURE_CREDENTIALS`` (chart value ``operator.allowInsecureCredentials``,
  default false): ``true`` lets an IngestRequest that sets ``spec.allowInsecureCredentials:
  true`` send its ``credentialsSecret`` over plain ``ftp://`` or ``http://``; both must agree,
  and only then does its fetcher get ``MOLSTREAM_ALLOW_INSECURE_CREDENTIALS=true``;
* ``MOLSTREAM_KNOWN_HOSTS``: known_hosts lines of sftp:// servers (the chart's
  ``operator.sftp.knownHosts``), handed to every fetcher; they win over an IngestRequest's
  ``spec.sftp.knownHosts`` for the hosts they name;
* ``MOLSTREAM_FETCHER_MAX_RESOURCES`` (chart value ``fetcher.maxResources``): the most an
  IngestRequest's ``spec.fetcher.resources`` may ask, e.g. ``cpu=4,memory=8Gi,
  ephemeral-storage=10Gi``, for its requests and its limits alike; a key left out (or the
  variable empty): no cap on it. Above it, the IngestRequest fails naming the field and the cap;
* ``MOLSTREAM_FETCHER_TEMPLATE``: YAML file with the fetcher Job settings (``FetcherTemplate``;
  unset: built-in defaults);
* ``MOLSTREAM_OPERATOR_GROUP_ID``: Kafka consumer group (default ``molstream-operator``);
* ``MOLSTREAM_WATCH_NAMESPACES``: comma-separated namespaces to serve, like ``-n`` on the
  command line (unset: the Pod's own namespace);
* ``MOLSTREAM_FETCHER_METRICS_PORT``: port of the fetchers' ``/metrics`` (their
  ``MOLSTREAM_METRICS_PORT`` and a container port named ``metrics``; empty: no metrics);
* ``MOLSTREAM_FETCHER_METRICS_LINGER_S``: seconds a fetcher keeps serving after its ingest, until
  one more scrape (their ``MOLSTREAM_METRICS_LINGER_S``; default 60, about twice a usual scrape
  interval: a Job's Pod is not scraped once it has ended).

Leader election among replicas is read by ``leadership.ElectionSettings`` (before kopf starts):
``MOLSTREAM_LEASE_NAME`` (unset: standalone), ``MOLSTREAM_LEASE_NAMESPACE`` (default
``POD_NAMESPACE``), ``POD_NAME`` (the identity), ``MOLSTREAM_LEASE_DURATION_S``,
``MOLSTREAM_LEASE_RENEW_DEADLINE_S``, ``MOLSTREAM_LEASE_RETRY_PERIOD_S`` (15, 10, 2).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from molstream.kafka_security import KafkaSecurity

DEFAULT_SCRATCH_SIZE = "8Gi"
DEFAULT_METRICS_LINGER_S = 60.0
DEFAULT_TTL_SECONDS = 3600
__all__ = ["DEFAULT_TEMPLATE", "FetcherTemplate", "OperatorConfig"]

logger = logging.getLogger(__name__)

#: What a fetcher Pod gets when the template file leaves a key out: non-root, read-only root
#: filesystem, no capabilities, a writable emptyDir on /tmp for the download and vaex's HDF5 file.
DEFAULT_TEMPLATE: dict[str, Any] = {
    "image": "molstream:latest",
    "imagePullPolicy": "IfNotPresent",
    "resources": {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"memory": "1Gi"},
    },
    "securityContext": {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    },
    "podSecurityContext": {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    },
    "serviceAccountName": "",
    # The fetcher's work directory (download, HDF5) on the writable emptyDir, whose limit the
    # fetcher checks before it downloads (molstream.scratch). The same default as the chart's
    # fetcher.scratchSize: room for ChEMBL's whole activities export uncompressed.
    "env": [{"name": "MOLSTREAM_WORK_DIR", "value": "/tmp/molstream-work"},
            {"name": "MOLSTREAM_SCRATCH_LIMIT", "value": DEFAULT_SCRATCH_SIZE}],
    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": DEFAULT_SCRATCH_SIZE}}],
    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    # Where and how the Pod runs: the Pod spec's own fields, copied as given.
    "imagePullSecrets": [],
    "nodeSelector": {},
    "tolerations": [],
    "affinity": {},
    "priorityClassName": "",
    # A finished Job of a one-off run (and its Pods) is deleted this long after it ends, by
    # the TTL controller; scheduled runs keep spec.*JobsHistoryLimit Jobs instead.
    "ttlSecondsAfterFinished": DEFAULT_TTL_SECONDS,
}

_LIST_KEYS = ("env", "volumes", "volumeMounts", "tolerations")
_MAP_KEYS = ("resources", "securityContext", "podSecurityContext", "nodeSelector", "affinity")


@dataclasses.dataclass(frozen=True, kw_only=True)
class FetcherTemplate:
    """Settings of the fetcher Job's Pod: the keys of ``DEFAULT_TEMPLATE``.

    A key given in the file replaces the default whole (``securityContext: {}`` really means
    none). ``env`` entries are added to the operator's own variables; they cannot replace them.
    """

    image: str
    imagePullPolicy: str  # noqa: N815 - the Kubernetes spelling, as in the file
    resources: dict[str, Any]
    securityContext: dict[str, Any]  # noqa: N815
    podSecurityContext: dict[str, Any]  # noqa: N815
    serviceAccountName: str  # noqa: N815
    env: list[dict[str, Any]]
    volumes: list[dict[str, Any]]
    volumeMounts: list[dict[str, Any]]  # noqa: N815
    imagePullSecrets: list[dict[str, str]]  # noqa: N815
    nodeSelector: dict[str, str]  # noqa: N815
    tolerations: list[dict[str, Any]]
    affinity: dict[str, Any]
    priorityClassName: str  # noqa: N815
    ttlSecondsAfterFinished: int  # noqa: N815

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> FetcherTemplate:
        data = dict(data or {})
        unknown = sorted(set(data) - set(DEFAULT_TEMPLATE))
        if unknown:
            logger.warning("Fetcher template: ignoring unknown keys %s", ", ".join(unknown))
        values = copy.deepcopy(DEFAULT_TEMPLATE)
        for key in DEFAULT_TEMPLATE:
            if key in data and data[key] is not None:
                values[key] = copy.deepcopy(data[key])
        if not isinstance(values["image"], str) or not values["image"]:
            raise ValueError("fetcher template: image must be a non-empty string")
        for key in _LIST_KEYS:
            if not isinstance(values[key], list):
                raise ValueError(f"fetcher template: {key} must be a list")
        for key in _MAP_KEYS:
            if not isinstance(values[key], dict):
                raise ValueError(f"fetcher template: {key} must be a mapping")
        values["serviceAccountName"] = str(values["serviceAccountName"] or "")
        values["priorityClassName"] = str(values["priorityClassName"] or "")
        values["imagePullSecrets"] = _pull_secrets(values["imagePullSecrets"])
        if not all(isinstance(v, str) for v in values["nodeSelector"].values()):
            raise ValueError("fetcher template: nodeSelector values must be strings")
        ttl = values["ttlSecondsAfterFinished"]
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
            raise ValueError("fetcher template: ttlSecondsAfterFinished must be an integer >= 0")
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> FetcherTemplate:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
        if data is not None and not isinstance(data, dict):
            raise ValueError(f"fetcher template {path}: expected a mapping at the top level")
        return cls.from_mapping(data)


def _pull_secrets(value: Any) -> list[dict[str, str]]:
    """imagePullSecrets as the Pod spec wants them: [{name}]; a bare name is read as one."""
    if not isinstance(value, list):
        raise ValueError("fetcher template: imagePullSecrets must be a list")
    out = []
    for item in value:
        name = item.get("name") if isinstance(item, dict) else item
        if not isinstance(name, str) or not name:
            raise ValueError("fetcher template: imagePullSecrets entries are {name: SECRET}")
        out.append({"name": name})
    return out


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


def _port(env: Mapping[str, str], var: str) -> int | None:
    value = env.get(var, "").strip()
    if not value:
        return None
    # 1-65535: a container port cannot be 0 (the fetcher's "any free port").
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ValueError(f"{var}={value!r}: expected a port number, 1-65535, or empty")
    return int(value)


def _networks(env: Mapping[str, str], var: str) -> tuple[str, ...]:
    """Comma-separated CIDRs, each checked (a mistake stops the operator at start-up)."""
    from molstream.addresses import parse_networks

    items = _split(env.get(var))
    parse_networks(items, name=var)
    return items


def _flag(env: Mapping[str, str], var: str) -> bool:
    value = env.get(var, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{var}={value!r}: expected true or false")


def _known_hosts(env: Mapping[str, str]) -> str:
    from molstream.known_hosts import check_lines

    return "\n".join(check_lines(env.get("MOLSTREAM_KNOWN_HOSTS", ""),
                                 where="MOLSTREAM_KNOWN_HOSTS"))


def _max_resources(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """MOLSTREAM_FETCHER_MAX_RESOURCES: ``key=quantity`` pairs, checked (a mistake stops the
    operator at start-up)."""
    from .models import RESOURCE_KEYS, parse_quantity

    var = "MOLSTREAM_FETCHER_MAX_RESOURCES"
    caps: dict[str, str] = {}
    for item in _split(env.get(var)):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or key not in RESOURCE_KEYS:
            raise ValueError(f"{var}: {item!r} is not key=quantity with a key among "
                             f"{', '.join(RESOURCE_KEYS)}")
        if not value:
            continue  # no cap on that key
        try:
            parse_quantity(value)
        except ValueError as exc:
            raise ValueError(f"{var}: {key}: {exc}") from None
        caps[key] = value
    return tuple(sorted(caps.items()))


def _seconds(env: Mapping[str, str], var: str, default: float) -> float:
    value = env.get(var, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"{var}={value!r}: expected seconds, 0 or more")
    return seconds


@dataclasses.dataclass(frozen=True, kw_only=True)
class OperatorConfig:
    kafka_bootstrap: str | None = None
    #: TLS, SASL, mTLS of the event consumer (checked; its repr hides the password).
    kafka_security: KafkaSecurity = dataclasses.field(default_factory=KafkaSecurity)
    topic_prefix: str = "molstream"
    allowed_hosts: tuple[str, ...] = ()
    #: The fetchers' address policy (molstream.addresses), checked, passed on as written.
    allowed_networks: tuple[str, ...] = ()
    internal_hosts: tuple[str, ...] = ()
    denied_networks: tuple[str, ...] = ()
    #: Credentials may go over plain ftp:// or http:// for the IngestRequests that ask for it.
    allow_insecure_credentials: bool = False
    #: known_hosts lines of sftp:// servers, checked (molstream.known_hosts).
    known_hosts: str = ""
    group_id: str = "molstream-operator"
    namespaces: tuple[str, ...] = ()
    fetcher: FetcherTemplate = dataclasses.field(
        default_factory=lambda: FetcherTemplate.from_mapping(None)
    )
    #: The most spec.fetcher.resources may ask, per key (cpu, memory, ephemeral-storage):
    #: (key, quantity) pairs; a key not here has no cap.
    fetcher_max_resources: tuple[tuple[str, str], ...] = ()
    #: Port of the fetchers' /metrics; None: they serve none.
    fetcher_metrics_port: int | None = None
    #: Seconds a fetcher serves its final figures at most, waiting for one more scrape.
    fetcher_metrics_linger_s: float = DEFAULT_METRICS_LINGER_S

    @property
    def events_topic(self) -> str:
        return f"{self.topic_prefix}.events"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, namespaces: tuple[str, ...] | None = None
    ) -> OperatorConfig:
        env = os.environ if environ is None else environ
        template_path = env.get("MOLSTREAM_FETCHER_TEMPLATE", "").strip()
        fetcher = (
            FetcherTemplate.from_file(Path(template_path))
            if template_path
            else FetcherTemplate.from_mapping(None)
        )
        return cls(
            kafka_bootstrap=env.get("MOLSTREAM_KAFKA_BOOTSTRAP", "").strip() or None,
            kafka_security=KafkaSecurity.from_env(env),
            topic_prefix=env.get("MOLSTREAM_TOPIC_PREFIX", "").strip() or "molstream",
            allowed_hosts=_split(env.get("MOLSTREAM_ALLOWED_HOSTS")),
            allowed_networks=_networks(env, "MOLSTREAM_ALLOWED_NETWORKS"),
            internal_hosts=_split(env.get("MOLSTREAM_INTERNAL_HOSTS")),
            denied_networks=_networks(env, "MOLSTREAM_DENIED_NETWORKS"),
            allow_insecure_credentials=_flag(env, "MOLSTREAM_ALLOW_INSECURE_CREDENTIALS"),
            known_hosts=_known_hosts(env),
            group_id=env.get("MOLSTREAM_OPERATOR_GROUP_ID", "").strip() or "molstream-operator",
            namespaces=(
                namespaces
                if namespaces is not None
                else _split(env.get("MOLSTREAM_WATCH_NAMESPACES"))
            ),
            fetcher=fetcher,
            fetcher_max_resources=_max_resources(env),
            fetcher_metrics_port=_port(env, "MOLSTREAM_FETCHER_METRICS_PORT"),
            fetcher_metrics_linger_s=_seconds(
                env, "MOLSTREAM_FETCHER_METRICS_LINGER_S", DEFAULT_METRICS_LINGER_S
            ),
        )
