"""Settings read from the environment (MOLSTREAM_*), shared by the fetcher and the worker.

Every setting has a default that works for a local run; Kubernetes feeds the same variables
from the Helm chart. Secrets (source credentials) are read separately, only where needed, by
`molstream.fetch.credentials_from_env`, so that a Settings object can be logged safely.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from .addresses import parse_networks
from .hosts import parse_hosts
from .kafka_security import KafkaSecurity


class Mode(StrEnum):
    """How the worker treats a row whose natural key already exists (the seed's UPSERT_RECORDS)."""

    UPSERT = "upsert"
    INSERT_ONLY = "insert-only"
    # An upsert that then retires the activities the previous mirror of the same source held and
    # this file lacks, and brings back those it retired that come back (molstream.mirror).
    MIRROR = "mirror"

    @classmethod
    def parse(cls, value: str) -> Mode:
        normalized = value.strip().replace("_", "-").lower()
        if normalized in ("insertonly", "insert"):
            normalized = cls.INSERT_ONLY.value
        try:
            return cls(normalized)
        except ValueError:
            raise ValueError(f"mode must be 'upsert', 'insert-only' or 'mirror', not {value!r}"
                             ) from None

    @property
    def upserts(self) -> bool:
        """Existing rows are updated where a value differs (upsert and mirror)."""
        return self is not Mode.INSERT_ONLY


def _env(name: str, default: str) -> str:
    return os.environ.get(f"MOLSTREAM_{name}", default)


def _env_list(name: str) -> tuple[str, ...]:
    """A comma-separated list (empty items dropped)."""
    return tuple(item.strip() for item in _env(name, "").split(",") if item.strip())


def _env_int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"MOLSTREAM_{name} must be an integer, not {raw!r}") from None


@dataclass(frozen=True, kw_only=True)
class Topics:
    prefix: str = "molstream"

    @property
    def rows(self) -> str:
        return f"{self.prefix}.rows"

    @property
    def rejected(self) -> str:
        return f"{self.prefix}.rejected"

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"


@dataclass(frozen=True, kw_only=True)
class Settings:
    kafka_bootstrap: str = "localhost:9092"
    # TLS, SASL, mTLS for every Kafka client (MOLSTREAM_KAFKA_SECURITY_PROTOCOL and the rest,
    # molstream.kafka_security); its repr never shows the password.
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)
    topics: Topics = field(default_factory=Topics)
    database_url: str = "sqlite:///molstream.db"
    # Empty means no Redis: the worker resolves ids from its process cache and the database.
    redis_url: str = "redis://localhost:6379/0"
    reports_dir: Path = Path("reports")
    work_dir: Path = Path(".molstream-work")
    mode: Mode = Mode.UPSERT
    # Provenance: the release a file is (e.g. chembl_35), recorded with its ingest; and, in
    # mirror mode, the source it mirrors (empty: the URL; the operator gives the IngestRequest).
    release: str = ""
    mirror_key: str = ""
    # The worker's: a mirror retires at most this share of its previous release's activities,
    # or nothing (molstream.mirror).
    mirror_max_retire: float = 0.25
    batch_size: int = 10_000
    # Limits that protect the fetcher from hostile or broken sources.
    max_download_bytes: int = 20 * 1024**3
    max_decompressed_bytes: int = 50 * 1024**3
    download_timeout_s: int = 6 * 3600
    max_field_bytes: int = 100_000
    # The input's format (molstream.read.Format): the delimiter (empty: detected from the
    # header line), tokens read as NULL besides the empty field, a zip archive's member, and
    # (source header, contract column) pairs.
    delimiter: str = ""
    null_tokens: tuple[str, ...] = ()
    zip_member: str = ""
    columns: tuple[tuple[str, str], ...] = ()
    retries: int = 5
    source_ca_file: Path | None = None
    # sftp:// sources: known_hosts lines the server's host key must match
    # (MOLSTREAM_SOURCE_KNOWN_HOSTS, and the file MOLSTREAM_SOURCE_KNOWN_HOSTS_FILE names), and
    # the operator's administrator's (MOLSTREAM_KNOWN_HOSTS), which win for the hosts they name.
    source_known_hosts: str = ""
    known_hosts: str = ""
    # Hosts the fetcher may download from, redirects included (the operator's own list,
    # handed to its Jobs); empty: any.
    allowed_hosts: tuple[str, ...] = ()
    # Which addresses the fetcher may connect to (molstream.addresses): every non-public one
    # (loopback, link-local, private, CGNAT, ...) is refused unless one of these allows it.
    # MOLSTREAM_ALLOWED_NETWORKS: CIDRs that may be reached although not public (a local run:
    # 127.0.0.0/8,::1/128); MOLSTREAM_INTERNAL_HOSTS: host names (*.example.org too) that may
    # resolve to non-public addresses; MOLSTREAM_DENIED_NETWORKS: CIDRs always refused (denied
    # wins over allowed). The operator hands its own values to every fetcher Job.
    allowed_networks: tuple[str, ...] = ()
    internal_hosts: tuple[str, ...] = ()
    denied_networks: tuple[str, ...] = ()
    # Whether credentials may go over plain ftp:// or http:// (MOLSTREAM_ALLOW_INSECURE_
    # CREDENTIALS=true; the operator sets it only when both the IngestRequest and its
    # administrator allow it).
    allow_insecure_credentials: bool = False
    # A limit of the scratch space that its file system does not show (an emptyDir's
    # sizeLimit), as bytes or a Kubernetes quantity ("8Gi"); empty: none.
    scratch_limit: str = ""
    rows_partitions: int = 1
    # How long the fetcher and the worker ride out a Kafka broker that does not answer before
    # they give up (one error line, exit status 2).
    kafka_outage_s: int = 300
    # How long one SQLite statement waits for another writer's lock before the worker logs it
    # and tries again (with backoff, for as long as the lock is held).
    db_busy_timeout_s: int = 60
    worker_group: str = "molstream-worker"
    # Kafka static membership (group.instance.id): a worker restarted under the same id takes
    # its partitions back at once, not after the dead one's session (10 s) has expired. Empty:
    # dynamic membership. Two running workers must never share one: the newer fences the older.
    worker_instance_id: str = ""
    # The worker's health endpoints (molstream.health): /healthz and /readyz on this port (0:
    # off). Liveness fails when the consume loop has not turned, or one database operation
    # has run, for longer than liveness_timeout_s.
    health_port: int = 8080
    liveness_timeout_s: int = 300
    # Topics (molstream.publish.ensure_topics): created by the fetcher and the worker unless
    # false (the Helm chart's topics Job or Strimzi KafkaTopics create them); when created,
    # with this replication factor and min.insync.replicas (0: the broker's default).
    create_topics: bool = True
    topic_replication_factor: int = 1
    topic_min_insync_replicas: int = 0

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            kafka_bootstrap=_env("KAFKA_BOOTSTRAP", cls.kafka_bootstrap),
            kafka_security=KafkaSecurity.from_env(),
            topics=Topics(prefix=_env("TOPIC_PREFIX", "molstream")),
            database_url=_env("DATABASE_URL", cls.database_url),
            redis_url=_env("REDIS_URL", cls.redis_url),
            reports_dir=Path(_env("REPORTS_DIR", str(cls.reports_dir))),
            work_dir=Path(_env("WORK_DIR", str(cls.work_dir))),
            mode=Mode.parse(_env("MODE", cls.mode.value)),
            release=_env("RELEASE", cls.release),
            mirror_key=_env("MIRROR_KEY", cls.mirror_key),
            mirror_max_retire=float(_env("MIRROR_MAX_RETIRE", str(cls.mirror_max_retire))),
            batch_size=_env_int("BATCH_SIZE", cls.batch_size),
            max_download_bytes=_env_int("MAX_DOWNLOAD_BYTES", cls.max_download_bytes),
            max_decompressed_bytes=_env_int("MAX_DECOMPRESSED_BYTES", cls.max_decompressed_bytes),
            download_timeout_s=_env_int("DOWNLOAD_TIMEOUT_S", cls.download_timeout_s),
            max_field_bytes=_env_int("MAX_FIELD_BYTES", cls.max_field_bytes),
            delimiter=parse_delimiter(_env("DELIMITER", cls.delimiter)),
            null_tokens=_env_list("NULL_TOKENS"),
            zip_member=_env("ZIP_MEMBER", cls.zip_member),
            columns=parse_column_pairs(_env_list("COLUMNS")),
            retries=_env_int("RETRIES", cls.retries),
            source_ca_file=Path(_env("SOURCE_CA_FILE", "")) if _env("SOURCE_CA_FILE", "") else None,
            source_known_hosts=_known_hosts(),
            known_hosts=_env("KNOWN_HOSTS", ""),
            scratch_limit=_env("SCRATCH_LIMIT", cls.scratch_limit),
            rows_partitions=_env_int("ROWS_PARTITIONS", cls.rows_partitions),
            allowed_hosts=parse_hosts(_env("ALLOWED_HOSTS", "")),
            allowed_networks=_networks("ALLOWED_NETWORKS"),
            internal_hosts=parse_hosts(_env("INTERNAL_HOSTS", "")),
            denied_networks=_networks("DENIED_NETWORKS"),
            allow_insecure_credentials=_env_bool("ALLOW_INSECURE_CREDENTIALS", False),
            kafka_outage_s=_env_int("KAFKA_OUTAGE_S", cls.kafka_outage_s),
            db_busy_timeout_s=_env_int("DB_BUSY_TIMEOUT_S", cls.db_busy_timeout_s),
            worker_group=_env("WORKER_GROUP", cls.worker_group),
            worker_instance_id=_env("WORKER_INSTANCE_ID", cls.worker_instance_id),
            health_port=_env_int("HEALTH_PORT", cls.health_port),
            liveness_timeout_s=_env_int("LIVENESS_TIMEOUT_S", cls.liveness_timeout_s),
            create_topics=_env_bool("CREATE_TOPICS", cls.create_topics),
            topic_replication_factor=_env_int("TOPIC_REPLICATION_FACTOR",
                                              cls.topic_replication_factor),
            topic_min_insync_replicas=_env_int("TOPIC_MIN_INSYNC_REPLICAS",
                                               cls.topic_min_insync_replicas),
        )


def _networks(name: str) -> tuple[str, ...]:
    """A comma-separated list of CIDRs, each checked (ValueError naming the variable)."""
    items = _env_list(name)
    parse_networks(items, name=f"MOLSTREAM_{name}")
    return items


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"MOLSTREAM_{name} must be true or false, not {raw!r}")


def _known_hosts() -> str:
    """MOLSTREAM_SOURCE_KNOWN_HOSTS and the lines of MOLSTREAM_SOURCE_KNOWN_HOSTS_FILE."""
    text = _env("SOURCE_KNOWN_HOSTS", "")
    path = _env("SOURCE_KNOWN_HOSTS_FILE", "")
    if path:
        try:
            text += "\n" + Path(path).read_text()
        except OSError as e:
            raise ValueError(f"MOLSTREAM_SOURCE_KNOWN_HOSTS_FILE: cannot read {path}: "
                             f"{e.strerror or e}") from None
    return text.strip()


def parse_delimiter(value: str) -> str:
    """A delimiter as a user may write it: `,` a tab `;` `|`, or `\\t`, `tab`, `comma`,
    `semicolon`, `pipe` (which survive a command line and an environment variable); empty:
    none given (detected from the header line)."""
    if value == "":
        return ""
    found = _DELIMITER_SPELLINGS.get(value) or _DELIMITER_SPELLINGS.get(value.strip().lower())
    if found is None:
        raise ValueError(f"the delimiter must be one of ',' tab ';' '|', not {value!r}")
    return found


_DELIMITER_SPELLINGS = {",": ",", "comma": ",", "\t": "\t", "\\t": "\t", "tab": "\t",
                        ";": ";", "semicolon": ";", "|": "|", "pipe": "|"}


def parse_column_pairs(pairs: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """`SOURCE=COLUMN` pairs: a header of the file, the contract column it gives."""
    out = []
    for pair in pairs:
        source, sep, column = pair.rpartition("=")  # contract names hold no "="
        if not sep or not source.strip() or not column.strip():
            raise ValueError(f"a column map entry is SOURCE=COLUMN, not {pair!r}")
        out.append((source.strip(), column.strip()))
    return tuple(out)
