"""Typed views of the IngestRequest resource and of the Jobs the operator launches."""

from __future__ import annotations

import dataclasses
import decimal
import enum
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any
from urllib.parse import urlsplit

from molstream import known_hosts

from .urls import InvalidSpecError, check_source_url

__all__ = [
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "IngestRequestRef",
    "IngestRequestSpec",
    "JobView",
    "Mode",
    "SOURCE_CREDENTIALS_LABEL",
    "check_credentials_policy",
    "fetcher_resources",
]

GROUP = "molstream.io"
VERSION = "v1alpha1"
PLURAL = "ingestrequests"
KIND = "IngestRequest"

BATCH_SIZE_BOUNDS = (1, 100_000)
DEADLINE_BOUNDS = (30, 604_800)
BACKOFF_BOUNDS = (0, 10)
DELIMITERS = (",", "\t", ";", "|")
#: The row contract's columns (molstream.contract.COLUMN_NAMES, spelt out here so that the
#: operator does not load Arrow; a test keeps the two and the CRD's enum the same).
CONTRACT_COLUMNS = (
    "activity_id", "activity_type", "activity_units", "activity_value", "activity_relation",
    "molecule_id", "molecule_name", "molecule_max_phase", "molecule_structure",
    "molecule_inchi_key", "target_id", "target_name", "target_organism",
)


RELEASE = re.compile(r"[A-Za-z0-9._-]{1,100}")
#: A Secret's name (a DNS subdomain), as the CRD's pattern for spec.credentialsSecret.name.
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
#: The opt-in label a Secret must carry (value "true") to be named by spec.credentialsSecret:
#: whoever may create IngestRequests must not get the fetcher to send any other Secret away.
SOURCE_CREDENTIALS_LABEL = "molstream.io/source-credentials"
INSECURE_SCHEMES = ("ftp", "http")
#: spec.fetcher.resources: the sections and the keys the CRD allows.
RESOURCE_SECTIONS = ("requests", "limits")
RESOURCE_KEYS = ("cpu", "memory", "ephemeral-storage")
#: A resource.Quantity, as the CRD's pattern: Kubernetes' own without a sign, its exponent an
#: integer of one or two digits (Kubernetes' parser refuses a fractional one; a longer one is
#: never a fetcher's size).
QUANTITY = re.compile(
    r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]{1,2})?")
#: The largest quantity Kubernetes keeps (it caps a bigger one there): 2**63 - 1.
MAX_QUANTITY = decimal.Decimal(2**63 - 1)
#: The exponents parse_quantity takes (1e18 is the E suffix; the n suffix is 1e-9).
EXPONENT_BOUNDS = (-18, 18)
_QUANTITY_SUFFIXES = {
    **{s: decimal.Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi",
                                                                   "Ei"))},
    **{s: decimal.Decimal(10) ** e for s, e in (("n", -9), ("u", -6), ("m", -3), ("", 0),
                                                ("k", 3), ("M", 6), ("G", 9), ("T", 12),
                                                ("P", 15), ("E", 18))},
}


class Mode(enum.StrEnum):
    UPSERT = "upsert"
    INSERT_ONLY = "insertOnly"
    MIRROR = "mirror"

    @property
    def cli(self) -> str:
        """The fetcher's spelling: ``--mode upsert|insert-only|mirror``."""
        return "insert-only" if self is Mode.INSERT_ONLY else self.value


@dataclasses.dataclass(frozen=True, kw_only=True)
class IngestRequestRef:
    """Identity of one IngestRequest, enough to address it and to own children."""

    namespace: str
    name: str
    uid: str = ""
    generation: int = 0

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> IngestRequestRef:
        meta = body.get("metadata") or {}
        return cls(
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            uid=str(meta.get("uid") or ""),
            generation=int(meta.get("generation") or 0),
        )

    def owner_body(self) -> dict[str, Any]:
        """A minimal body for ``kopf.adopt`` and for Kubernetes Events."""
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {"namespace": self.namespace, "name": self.name, "uid": self.uid},
        }


def _int_in(spec: Mapping[str, Any], key: str, default: int, bounds: tuple[int, int]) -> int:
    value = spec.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSpecError(f"spec.{key}", "must be an integer")
    low, high = bounds
    if not low <= value <= high:
        raise InvalidSpecError(f"spec.{key}", f"must be between {low} and {high}")
    return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class IngestRequestSpec:
    """``spec`` of an IngestRequest, checked (again: the CRD schema checks it first)."""

    url: str
    credentials_secret: str | None = None
    schedule: str | None = None
    batch_size: int = 5000
    mode: Mode = Mode.UPSERT
    suspend: bool = False
    active_deadline_seconds: int = 3600
    backoff_limit: int = 2
    # spec.format and spec.columns: how the file is written, where detection is not enough.
    delimiter: str | None = None
    null_tokens: tuple[str, ...] = ()
    member: str | None = None
    columns: tuple[tuple[str, str], ...] = ()
    release: str | None = None  # spec.release, e.g. chembl_35: provenance
    # spec.sftp.knownHosts: the sftp:// server's host key(s), known_hosts lines.
    known_hosts: str = ""
    # spec.allowInsecureCredentials: the requester accepts that the credentials go over plain
    # ftp:// or http:// (the operator must allow it too: MOLSTREAM_ALLOW_INSECURE_CREDENTIALS).
    allow_insecure_credentials: bool = False
    # spec.fetcher.resources: (section, key, quantity), over the chart's (fetcher_resources).
    fetcher_resources: tuple[tuple[str, str, str], ...] = ()

    @property
    def sftp(self) -> bool:
        return urlsplit(self.url).scheme.lower() == "sftp"

    @classmethod
    def parse(
        cls, spec: Mapping[str, Any] | None, *, allowed_hosts: Collection[str] = (),
        pinned_known_hosts: str = "",
    ) -> IngestRequestSpec:
        """``pinned_known_hosts``: the operator's own (MOLSTREAM_KNOWN_HOSTS), enough for an
        sftp:// server they name."""
        spec = spec or {}
        url = check_source_url(spec.get("url"), allowed_hosts=allowed_hosts)
        known_hosts = _sftp(spec.get("sftp"), url, pinned_known_hosts)

        secret = spec.get("credentialsSecret")
        secret_name: str | None = None
        if secret is not None:
            if not isinstance(secret, Mapping) or not isinstance(secret.get("name"), str):
                raise InvalidSpecError("spec.credentialsSecret.name", "must be a Secret name")
            # Never trimmed or changed: the admission policy authorized this very string.
            secret_name = secret["name"]
            if len(secret_name) > 253 or not DNS_SUBDOMAIN.fullmatch(secret_name):
                raise InvalidSpecError(
                    "spec.credentialsSecret.name",
                    f"{secret_name!r} is not a Secret name (a DNS subdomain: lowercase letters, "
                    "digits, '-' and '.', at most 253 characters, no spaces)")

        schedule = spec.get("schedule")
        if schedule is not None:
            if not isinstance(schedule, str):
                raise InvalidSpecError("spec.schedule", "must be a cron expression")
            schedule = schedule.strip() or None

        raw_mode = spec.get("mode") or Mode.UPSERT.value
        try:
            mode = Mode(raw_mode)
        except ValueError:
            raise InvalidSpecError("spec.mode", "must be upsert, insertOnly or mirror") from None

        suspend = spec.get("suspend", False)
        if not isinstance(suspend, bool):
            raise InvalidSpecError("spec.suspend", "must be true or false")

        insecure = spec.get("allowInsecureCredentials", False)
        if not isinstance(insecure, bool):
            raise InvalidSpecError("spec.allowInsecureCredentials", "must be true or false")

        delimiter, null_tokens, member = _format(spec.get("format"))
        return cls(
            url=url,
            credentials_secret=secret_name,
            schedule=schedule,
            batch_size=_int_in(spec, "batchSize", 5000, BATCH_SIZE_BOUNDS),
            mode=mode,
            suspend=suspend,
            active_deadline_seconds=_int_in(spec, "activeDeadlineSeconds", 3600, DEADLINE_BOUNDS),
            backoff_limit=_int_in(spec, "backoffLimit", 2, BACKOFF_BOUNDS),
            delimiter=delimiter,
            null_tokens=null_tokens,
            member=member,
            columns=_columns(spec.get("columns")),
            release=_release(spec.get("release")),
            known_hosts=known_hosts,
            allow_insecure_credentials=insecure,
            fetcher_resources=_resources(spec.get("fetcher")),
        )


def check_credentials_policy(
    spec: IngestRequestSpec,
    *,
    allow_insecure: bool,
    secret_labels: Callable[[str], Mapping[str, str] | None],
) -> None:
    """Refuse (InvalidSpecError) what would hand a Secret to the wrong place:

    * credentials over plain ftp:// or http:// unless both the IngestRequest
      (spec.allowInsecureCredentials) and the operator (MOLSTREAM_ALLOW_INSECURE_CREDENTIALS)
      allow it;
    * a credentialsSecret without the opt-in label ``molstream.io/source-credentials: "true"``
      (``secret_labels(name)``: the Secret's labels, None when there is no such Secret).
    """
    name = spec.credentials_secret
    if not name:
        return
    scheme = urlsplit(spec.url).scheme.lower()
    if scheme in INSECURE_SCHEMES and not (spec.allow_insecure_credentials and allow_insecure):
        missing = " and ".join(
            what for what, given in (
                ("spec.allowInsecureCredentials: true", spec.allow_insecure_credentials),
                ("the operator's MOLSTREAM_ALLOW_INSECURE_CREDENTIALS=true (chart value "
                 "operator.allowInsecureCredentials)", allow_insecure),
            ) if not given)
        raise InvalidSpecError(
            "spec.credentialsSecret",
            f"credentials are never sent over plain {scheme}:// (anyone on the way could read "
            f"them): use {'ftps' if scheme == 'ftp' else 'https'}://, or allow it explicitly "
            f"({missing})")
    try:
        labels = secret_labels(name)
    except PermissionError:
        raise InvalidSpecError(
            "spec.credentialsSecret.name",
            f"the operator may not read the labels of Secret {name!r} (its Role needs get on "
            "secrets): refused, since it cannot tell the Secret is meant as source credentials",
        ) from None
    if labels is None:
        raise InvalidSpecError(
            "spec.credentialsSecret.name",
            f"Secret {name!r} not found in the namespace (create it, labelled "
            f"{SOURCE_CREDENTIALS_LABEL}: \"true\", then change the IngestRequest or annotate "
            "it molstream.io/rerun to try again)")
    if labels.get(SOURCE_CREDENTIALS_LABEL) != "true":
        raise InvalidSpecError(
            "spec.credentialsSecret.name",
            f"Secret {name!r} is not labelled {SOURCE_CREDENTIALS_LABEL}: \"true\": only a Secret "
            "meant as source credentials may be named (someone who may read it labels it: "
            f"kubectl label secret {name} {SOURCE_CREDENTIALS_LABEL}=true)")


def _sftp(raw: Any, url: str, pinned: str) -> str:
    """``spec.sftp.knownHosts`` (a list of known_hosts lines, or one text of them), checked;
    an sftp:// URL needs an entry naming its server, here or in the operator's own."""
    parts = urlsplit(url)
    if raw is not None and parts.scheme.lower() != "sftp":
        raise InvalidSpecError("spec.sftp", "is for sftp:// URLs only")
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise InvalidSpecError("spec.sftp", "must be an object")
    lines = raw.get("knownHosts") or []
    if isinstance(lines, str):
        lines = [lines]
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise InvalidSpecError("spec.sftp.knownHosts", "must be a list of known_hosts lines")
    text = "\n".join(line.strip() for line in lines)
    try:
        known_hosts.check_lines(text, where="known hosts")
    except ValueError as e:
        raise InvalidSpecError("spec.sftp.knownHosts", str(e)) from None
    if parts.scheme.lower() == "sftp" and not (
            known_hosts.names_host(text, parts.hostname or "", parts.port)
            or known_hosts.names_host(pinned, parts.hostname or "", parts.port)):
        name = known_hosts.host_key_name(parts.hostname or "", parts.port)
        port = f"-p {parts.port} " if parts.port not in (None, 22) else ""
        raise InvalidSpecError(
            "spec.sftp.knownHosts",
            f"an sftp:// source needs its server's host key: no entry names {name} (here or "
            f"in the operator's MOLSTREAM_KNOWN_HOSTS); `ssh-keyscan {port}{parts.hostname}` "
            "prints it, to be checked with the server's administrator (an unknown key is "
            "never trusted)")
    return text


def parse_quantity(value: str) -> decimal.Decimal:
    """A Kubernetes quantity (500m, 2, 1.5Gi, 1e3) as a number, to compare two of them.
    ValueError (never decimal's ArithmeticError) for anything else: not a quantity, an
    exponent beyond EXPONENT_BOUNDS, more than MAX_QUANTITY."""
    match = QUANTITY.fullmatch(value)
    if not match:
        raise ValueError(f"{value!r} is not a quantity (e.g. 500m, 2, 4Gi)")
    suffix = match["suffix"] or ""
    try:
        number = decimal.Decimal(match["number"])
        if suffix in _QUANTITY_SUFFIXES:  # before the exponent: Ei, E are suffixes
            amount = number * _QUANTITY_SUFFIXES[suffix]
        else:
            exponent = int(suffix[1:])
            low, high = EXPONENT_BOUNDS
            if not low <= exponent <= high:
                raise ValueError(f"{value!r}: the exponent is outside {low}..{high}")
            amount = number.scaleb(exponent)
    except ArithmeticError:
        raise ValueError(f"{value!r} is not a quantity Kubernetes keeps") from None
    if amount > MAX_QUANTITY:
        raise ValueError(f"{value!r} is more than Kubernetes keeps (2^63-1)")
    return amount


def _resources(raw: Any) -> tuple[tuple[str, str, str], ...]:
    """``spec.fetcher`` (its ``resources``: requests and limits of the fetcher container)."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise InvalidSpecError("spec.fetcher", "must be an object")
    resources = raw.get("resources")
    if resources is None:
        return ()
    if not isinstance(resources, Mapping) or set(resources) - set(RESOURCE_SECTIONS):
        raise InvalidSpecError("spec.fetcher.resources", "holds requests and limits only")
    out = []
    for section in RESOURCE_SECTIONS:
        values = resources.get(section) or {}
        field = f"spec.fetcher.resources.{section}"
        if not isinstance(values, Mapping):
            raise InvalidSpecError(field, "must map cpu, memory or ephemeral-storage to a quantity")
        for key, value in values.items():
            if key not in RESOURCE_KEYS:
                raise InvalidSpecError(field, f"{key!r}: the keys are {', '.join(RESOURCE_KEYS)}")
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                value = str(value)
            if not isinstance(value, str):
                raise InvalidSpecError(f"{field}.{key}",
                                       f"{value!r} is not a quantity (e.g. 500m, 2, 4Gi)")
            try:
                parse_quantity(value)
            except ValueError as exc:
                raise InvalidSpecError(f"{field}.{key}", str(exc)) from None
            out.append((section, key, value))
    return tuple(sorted(out))  # one Job for one spec, whatever the map's order


def fetcher_resources(
    base: Mapping[str, Any], spec: IngestRequestSpec,
    caps: Collection[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The fetcher container's resources: the chart's (``base``: the fetcher template's) with
    the IngestRequest's spec.fetcher.resources over them key by key. InvalidSpecError when a
    value of the IngestRequest is above the administrator's cap (``caps``: (key, quantity),
    the chart's fetcher.maxResources), or a request ends up above its limit (the API server
    would refuse the Pod later, less clearly)."""
    cap = dict(caps)
    for section, key, value in spec.fetcher_resources:
        if key in cap and parse_quantity(value) > parse_quantity(cap[key]):
            raise InvalidSpecError(
                f"spec.fetcher.resources.{section}.{key}",
                f"{value} is more than the administrator allows, {cap[key]} (the chart's "
                f"fetcher.maxResources.{key})")
    merged: dict[str, Any] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in base.items()}
    for section, key, value in spec.fetcher_resources:
        merged.setdefault(section, {})[key] = value
    given = {(section, key) for section, key, _ in spec.fetcher_resources}
    requests, limits = merged.get("requests") or {}, merged.get("limits") or {}
    for key in sorted(set(requests) & set(limits)):
        try:
            above = parse_quantity(str(requests[key])) > parse_quantity(str(limits[key]))
        except ValueError:
            continue  # the chart's own value: the API server judges it
        if not above:
            continue
        if ("requests", key) in given and ("limits", key) in given:
            raise InvalidSpecError(
                f"spec.fetcher.resources.requests.{key}",
                f"{requests[key]} is more than spec.fetcher.resources.limits.{key} "
                f"{limits[key]}")
        if ("requests", key) in given:
            raise InvalidSpecError(
                f"spec.fetcher.resources.requests.{key}",
                f"{requests[key]} is more than the fetcher's limit {limits[key]} (the chart's "
                f"fetcher.resources.limits.{key}): raise spec.fetcher.resources.limits.{key} too")
        raise InvalidSpecError(
            f"spec.fetcher.resources.limits.{key}",
            f"{limits[key]} is less than the fetcher's request {requests[key]} (the chart's "
            f"fetcher.resources.requests.{key}): lower spec.fetcher.resources.requests.{key} too")
    return merged


def _release(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not RELEASE.fullmatch(raw):
        raise InvalidSpecError("spec.release", "must be 1 to 100 letters, digits, '.', '_' or "
                               "'-' (e.g. chembl_35)")
    return raw


def _format(raw: Any) -> tuple[str | None, tuple[str, ...], str | None]:
    """``spec.format``: (delimiter, null tokens, zip member)."""
    if raw is None:
        return None, (), None
    if not isinstance(raw, Mapping):
        raise InvalidSpecError("spec.format", "must be an object")
    delimiter = raw.get("delimiter")
    if delimiter is not None and delimiter not in DELIMITERS:
        raise InvalidSpecError("spec.format.delimiter", "must be one of ',' tab ';' '|'")
    tokens = raw.get("nullTokens") or []
    if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
        raise InvalidSpecError("spec.format.nullTokens", "must be a list of non-empty strings")
    member = raw.get("member")
    if member is not None and (not isinstance(member, str) or not member):
        raise InvalidSpecError("spec.format.member", "must be a non-empty file name")
    return delimiter, tuple(tokens), member


def _columns(raw: Any) -> tuple[tuple[str, str], ...]:
    """``spec.columns``: (a header of the file, the contract column it gives)."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise InvalidSpecError("spec.columns", "must map a header of the file to a column")
    out = []
    for source, column in raw.items():
        if not isinstance(source, str) or not source.strip():
            raise InvalidSpecError("spec.columns", "a header name must not be empty")
        if column not in CONTRACT_COLUMNS:
            raise InvalidSpecError(f"spec.columns.{source}",
                                   f"must be one of {', '.join(CONTRACT_COLUMNS)}")
        out.append((source, column))
    if len({c for _, c in out}) < len(out):
        raise InvalidSpecError("spec.columns", "two headers map to the same column")
    return tuple(sorted(out))  # as the API server stores the map: the same Job every time


@dataclasses.dataclass(frozen=True, kw_only=True)
class JobView:
    """What the operator reads from a fetcher Job (batch/v1)."""

    name: str
    namespace: str
    ingestrequest: str | None
    creation_time: str | None
    scheduled: bool
    active: int = 0
    succeeded: int = 0
    failed: int = 0
    suspended: bool = False
    complete: bool = False
    failure_reason: str | None = None
    failure_message: str | None = None
    schedule_time: str | None = None

    @classmethod
    def from_body(cls, job: Mapping[str, Any]) -> JobView:
        from .manifests import ANNOTATION_IR, ANNOTATION_SCHEDULED_AT, LABEL_IR, LABEL_SCHEDULED

        meta = job.get("metadata") or {}
        labels = meta.get("labels") or {}
        annotations = meta.get("annotations") or {}
        spec = job.get("spec") or {}
        status = job.get("status") or {}
        complete = False
        failure_reason = failure_message = None
        suspended = bool(spec.get("suspend"))
        for cond in status.get("conditions") or []:
            if cond.get("status") != "True":
                continue
            if cond.get("type") == "Complete":
                complete = True
            elif cond.get("type") == "Failed":
                failure_reason = cond.get("reason") or "JobFailed"
                failure_message = cond.get("message") or ""
            elif cond.get("type") == "Suspended":
                suspended = True
        return cls(
            name=str(meta.get("name") or ""),
            namespace=str(meta.get("namespace") or ""),
            ingestrequest=annotations.get(ANNOTATION_IR) or labels.get(LABEL_IR),
            creation_time=meta.get("creationTimestamp"),
            scheduled=labels.get(LABEL_SCHEDULED) == "true",
            active=int(status.get("active") or 0),
            succeeded=int(status.get("succeeded") or 0),
            failed=int(status.get("failed") or 0),
            suspended=suspended,
            complete=complete,
            failure_reason=failure_reason,
            failure_message=failure_message,
            schedule_time=annotations.get(ANNOTATION_SCHEDULED_AT),
        )
