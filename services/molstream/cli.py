"""`molstream` command line: fetch, worker, sample, report.

Every option also reads an environment variable (shown in --help), which is how the Kubernetes
manifests configure the fetcher Job and the worker Deployment.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import NoReturn

import click

from .config import Mode, Settings, Topics, parse_column_pairs, parse_delimiter

log = logging.getLogger("molstream")


class _OneLineKafkaErrors(logging.Filter):
    """kafka-python 3 logs a lost connection with a traceback (`log.exception`): a broker
    restarting is an event to note, not a crash. Its exception goes on the record's line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.name.startswith("kafka."):
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(error).__name__}: {error}"
            record.args, record.exc_info, record.exc_text = None, None, None
        return True


# kafka-python 3.0.12's words (coordinator/base.py) when this member leaves its group because
# it went silent (its loop was blocked); the bench counts them in the worker's log.
MEMBER_DROPPED_WORDS = ("Heartbeat session expired, marking coordinator dead",
                        "Consumer poll timeout has expired")


class _MemberDropped(logging.Filter):
    """Of kafka-python's heartbeat warnings, only those saying this member was dropped
    (MEMBER_DROPPED_WORDS): the others come with every rebalance."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or str(record.msg).startswith(
            MEMBER_DROPPED_WORDS)


_MEMBER_DROPPED = _MemberDropped()


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_OneLineKafkaErrors())
    logging.getLogger("kafka").setLevel(logging.WARNING if not verbose else logging.INFO)
    # kafka-python logs every coordinator hand-over at WARNING; vaex warns about memory maps
    # it cannot unmap while Arrow still references them. Neither is actionable.
    logging.getLogger("kafka.coordinator").setLevel(logging.ERROR if not verbose else logging.INFO)
    # ...but its heartbeat logger says, among its chatter, when this member was dropped
    heartbeat = logging.getLogger("kafka.coordinator.heartbeat")
    if verbose:
        heartbeat.setLevel(logging.NOTSET)
        heartbeat.removeFilter(_MEMBER_DROPPED)
    else:
        heartbeat.setLevel(logging.WARNING)
        heartbeat.addFilter(_MEMBER_DROPPED)
    logging.getLogger("vaex").setLevel(logging.ERROR if not verbose else logging.INFO)
    # Importing vaex (later, lazily) would otherwise add a handler printing to stdout, where
    # `fetch` writes its JSON result, and reset the level set above.
    os.environ.setdefault("VAEX_LOGGING_SETUP", "false")
    os.environ.setdefault("VAEX_LOGGING_WARNING", "")
    os.environ.setdefault("VAEX_LOGGING_ERROR" if not verbose else "VAEX_LOGGING_INFO", "vaex")


def _settings(**overrides) -> Settings:
    try:
        base = Settings.from_env()
    except ValueError as e:  # a variable set wrong: one line naming it
        _fail(str(e), EXIT_PERMANENT)
    changes = {k: v for k, v in overrides.items() if v is not None}
    if "topic_prefix" in changes:
        changes["topics"] = Topics(prefix=changes.pop("topic_prefix"))
    return dataclasses.replace(base, **changes)


#: Exit statuses. A failure a retry may overcome (Kafka unreachable, a download that gave up
#: after its retries or ran out of time, an unexpected error) exits 2 (1 for a crash); a
#: permanent one exits EXIT_PERMANENT: running again gives the same answer (a wrong password,
#: no such file (404), access refused, an address or host refused, a TLS certificate refused,
#: an invalid or too large file, a missing column, a bad --loaded). The operator's fetcher Job
#: fails at once on EXIT_PERMANENT (its podFailurePolicy), without its retries.
EXIT_FAILED = 2
EXIT_PERMANENT = 3


def _fail(message: str, status: int = EXIT_FAILED) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(status)


def _exit_status(error: BaseException) -> int:
    """EXIT_PERMANENT when the cause of a failed ingest (the exception `IngestFailed` was raised
    from, kept as its __context__) will fail the same way again, else EXIT_FAILED."""
    from .contract import ContractError
    from .fetch.common import FetchError, Transient
    from .kafka_security import KafkaAccessError
    from .publish import PublishError
    from .read import ReadError

    cause = error.__context__
    if isinstance(cause, ReadError | ContractError | KafkaAccessError):
        return EXIT_PERMANENT
    if isinstance(cause, PublishError) and cause.permanent:  # Kafka refused us
        return EXIT_PERMANENT
    if isinstance(cause, FetchError):
        gave_up = isinstance(cause.__context__, Transient)  # retried, then gave up
        timed_out = "MOLSTREAM_DOWNLOAD_TIMEOUT_S" in str(cause)
        return EXIT_FAILED if gave_up or timed_out else EXIT_PERMANENT
    return EXIT_FAILED


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL: say nothing of it
        return "(unreadable URL)"


def _use_jemalloc() -> None:
    """Arrow allocates with jemalloc: both processes allocate and free whole batches one after
    another, and Arrow's default (mimalloc) kept freed ones (1M rows: fetcher peak RSS ~406 →
    ~345 MB, worker ~385 → ~330 MB); glibc's malloc does as well for the worker but worse for
    the fetcher's reader threads (~500 MB). Set before pyarrow loads: the variable also reaches
    Arrow's C++ code (the CSV reader, IPC), which `pa.set_memory_pool` does not. A user's own
    setting wins. Linux only: Arrow's wheels carry jemalloc there (elsewhere Arrow would warn
    and keep its default)."""
    if sys.platform == "linux":
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")


_mode = click.Choice([m.value for m in Mode] + ["insertOnly"])
_metrics_port = click.option(
    "--metrics-port", type=click.IntRange(0, 65535), envvar="MOLSTREAM_METRICS_PORT",
    help="Serve Prometheus metrics on this port (/metrics; 0: any free port) "
         "[env MOLSTREAM_METRICS_PORT]; off when unset.")


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """molstream: ChEMBL activity CSV → Kafka → normalized SQL database."""
    _use_jemalloc()  # before any command imports pyarrow
    _setup_logging(verbose)


@main.command()
@click.option("--url", envvar="MOLSTREAM_SOURCE_URL", required=True,
              help="ftp://, ftps://, http://, https:// or file:// URL of the CSV (.gz allowed).")
@click.option("--ingest-id", envvar="MOLSTREAM_INGEST_ID",
              help="Identifies this ingest; run again with the same id to resume it.")
@click.option("--batch-size", type=click.IntRange(1, 1_000_000), envvar="MOLSTREAM_BATCH_SIZE")
@click.option("--mode", type=_mode, envvar="MOLSTREAM_MODE")
@click.option("--kafka", "kafka_bootstrap", envvar="MOLSTREAM_KAFKA_BOOTSTRAP")
@click.option("--work-dir", type=click.Path(path_type=Path), envvar="MOLSTREAM_WORK_DIR")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: on a TTY).")
@click.option("--delimiter", callback=lambda _c, _p, v: _checked(parse_delimiter, v),
              help="The field delimiter: ',' a tab ('\\t' or 'tab') ';' '|' "
                   "[env MOLSTREAM_DELIMITER]; default: detected from the header line.")
@click.option("--null-token", "null_tokens", multiple=True, metavar="TOKEN",
              help="A token read as NULL besides the empty field, quoted or not (repeatable: "
                   "--null-token NULL --null-token '\\N') [env MOLSTREAM_NULL_TOKENS, "
                   "comma-separated].")
@click.option("--member", help="The member of a zip archive to read (default: its only CSV "
                               "file) [env MOLSTREAM_ZIP_MEMBER].")
@click.option("--column", "columns", multiple=True, metavar="SOURCE=COLUMN",
              callback=lambda _c, _p, v: _checked(_column_map, v) if v else None,
              help="A header of the file read as a column of the contract (repeatable: "
                   "--column pref_name=molecule_name) [env MOLSTREAM_COLUMNS, comma-separated].")
@click.option("--release", help="The release the file is (e.g. chembl_35), recorded with the "
                                "ingest: provenance [env MOLSTREAM_RELEASE].")
@click.option("--mirror-key", help="Mirror mode: the source this mirrors; the previous mirror "
                                   "under the same key is what rows are retired against "
                                   "(default: the URL) [env MOLSTREAM_MIRROR_KEY].")
@click.option("--loaded", envvar="MOLSTREAM_SOURCE_LOADED", metavar="JSON",
              help="The files loaded before: a JSON list of {url, etag, lastModified, size, "
                   "sha256}, oldest first. A source they prove unchanged ends the run at once, "
                   "publishing nothing [env MOLSTREAM_SOURCE_LOADED].")
@click.option("--force/--no-force", default=False, envvar="MOLSTREAM_FORCE",
              help="Ingest even an unchanged source [env MOLSTREAM_FORCE].")
@_metrics_port
@click.option("--metrics-linger", type=click.FloatRange(0), default=0, show_default=True,
              envvar="MOLSTREAM_METRICS_LINGER_S",
              help="With metrics on: once the ingest has ended, keep serving until one more "
                   "scrape has read the final figures, for at most this many seconds "
                   "[env MOLSTREAM_METRICS_LINGER_S].")
def fetch(url: str, ingest_id: str | None, batch_size: int | None, mode: str | None,
          kafka_bootstrap: str | None, work_dir: Path | None, progress: bool | None,
          delimiter: str | None, null_tokens: tuple[str, ...], member: str | None,
          columns: tuple[tuple[str, str], ...] | None, release: str | None,
          mirror_key: str | None, loaded: str | None, force: bool, metrics_port: int | None,
          metrics_linger: float) -> None:
    """Download a CSV, validate its rows and publish them to Kafka.

    Exit status: 0 done (or unchanged); 2 failed, a retry may succeed (Kafka, a download that
    gave up or timed out); 3 a permanent error (wrong password, no such file, refused address
    or certificate, invalid file, missing column; Kafka refusing the login, a certificate or
    an ACL): the Job is not retried."""
    from . import metrics
    from .fetch import credentials_from_env
    from .fetch.identity import parse_loaded
    from .fetcher import IngestFailed, run

    settings = _settings(kafka_bootstrap=kafka_bootstrap, work_dir=work_dir,
                         delimiter=delimiter, null_tokens=null_tokens or None,
                         zip_member=member, columns=columns, release=release,
                         mirror_key=mirror_key)
    ingest_id = ingest_id or f"ingest-{time.strftime('%Y%m%dT%H%M%S')}"
    show = sys.stderr.isatty() if progress is None else progress
    try:
        known = parse_loaded(loaded)
    except ValueError as e:
        _fail(str(e), EXIT_PERMANENT)
    server = _serve(metrics.FETCHER, metrics_port)
    try:
        result = run(url, ingest_id=ingest_id, settings=settings,
                     credentials=credentials_from_env(),
                     mode=Mode.parse(mode) if mode else None, batch_size=batch_size,
                     show_progress=show, loaded=known, force=force)
    except IngestFailed as e:
        _linger(server, metrics_linger)
        _fail(str(e), _exit_status(e))
    _linger(server, metrics_linger)
    click.echo(json.dumps(dataclasses.asdict(result)))


def _checked(parse, value):
    """An option's value through `parse`, its ValueError as click's usage error."""
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _column_map(pairs: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    from .contract import COLUMN_NAMES

    parsed = parse_column_pairs(pairs)
    for source, column in parsed:
        if column not in COLUMN_NAMES:
            raise ValueError(f"{source}={column}: {column!r} is not a column of the contract "
                             f"({', '.join(COLUMN_NAMES)})")
    return parsed


def _serve(registry, port: int | None):
    from . import metrics

    try:
        return metrics.serve(registry, port)
    except OSError as e:
        _fail(f"cannot serve metrics on port {port}: {e.strerror or e}")


def _serve_health(settings):
    """The worker's /healthz and /readyz (molstream.health), served before it connects to
    anything, so that readiness tells a worker still reaching its database."""
    from .health import Health, serve

    health = Health(settings.liveness_timeout_s)
    try:
        serve(health, settings.health_port)
    except OSError as e:  # a local run's second worker: Kubernetes gives each Pod its port
        logging.getLogger("molstream.health").warning(
            "cannot serve health on port %d (MOLSTREAM_HEALTH_PORT; 0: off): %s; running "
            "without it", settings.health_port, e.strerror or e)
    return health


def _linger(server, seconds: float) -> None:
    """The ingest is over: its figures are final; serve them until scraped (or `seconds`)."""
    from . import metrics

    if server is None:
        metrics.FINISHED.set(1)
        return
    server.finish(lambda: metrics.FINISHED.set(1))
    server.linger(seconds)
    server.close()


@main.command()
@click.option("--database-url", envvar="MOLSTREAM_DATABASE_URL")
@click.option("--kafka", "kafka_bootstrap", envvar="MOLSTREAM_KAFKA_BOOTSTRAP")
@click.option("--redis-url", envvar="MOLSTREAM_REDIS_URL",
              help="Empty to run without Redis.")
@click.option("--reports-dir", type=click.Path(path_type=Path), envvar="MOLSTREAM_REPORTS_DIR")
@click.option("--until-complete", multiple=True, metavar="INGEST_ID",
              help="Exit once these ingests have completed (local runs, benchmarks).")
@click.option("--idle-timeout", type=float, help="Exit after this many seconds without messages.")
@click.option("--progress/--no-progress", default=None)
@_metrics_port
def worker(database_url: str | None, kafka_bootstrap: str | None, redis_url: str | None,
           reports_dir: Path | None, until_complete: tuple[str, ...],
           idle_timeout: float | None, progress: bool | None, metrics_port: int | None) -> None:
    """Apply row batches from Kafka to the database."""
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from . import metrics
    from .kafka_security import KafkaAccessError
    from .publish import PublishError
    from .report import format_table
    from .worker import Fenced, KafkaUnavailable, Worker

    settings = _settings(database_url=database_url, kafka_bootstrap=kafka_bootstrap,
                         redis_url=redis_url, reports_dir=reports_dir)
    show = sys.stderr.isatty() if progress is None else progress
    _serve(metrics.WORKER, metrics_port)
    health = _serve_health(settings)
    try:
        w = Worker(settings, show_progress=show, health=health)
    except KafkaAccessError as e:  # a login, a certificate or an ACL refused
        _fail(str(e), EXIT_PERMANENT)
    except PublishError as e:
        _fail(str(e), EXIT_PERMANENT if e.permanent else EXIT_FAILED)
    except ArgumentError:  # its message repeats the URL, password and all
        _fail("the database URL is not one SQLAlchemy reads "
              "(sqlite:///path/to/file.db or postgresql://user@host/db)")
    except SQLAlchemyError as e:
        cause = str(getattr(e, "orig", None) or e).splitlines()[0]
        _fail(f"cannot open the database {_hide_password(settings.database_url)}: {cause}")
    try:
        w.run(until_complete=until_complete, idle_timeout_s=idle_timeout)
    except (Fenced, KafkaUnavailable) as e:
        _fail(str(e))
    except KafkaAccessError as e:
        _fail(str(e), EXIT_PERMANENT)
    for rep in w.completed:
        click.echo(format_table(rep))
    failed = [a for a in w.failed if a.ingest_id in until_complete]
    for a in failed:
        click.echo(f"error: ingest {a.ingest_id} failed: {a.failure}", err=True)
    if failed:
        sys.exit(1)


@main.command()
@click.option("--rows", type=click.IntRange(0), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Output file; gzip-compressed when it ends in .gz.")
# molstream.sample.SHAPES, spelt out so that --help does not import NumPy and Arrow.
@click.option("--shape", type=click.Choice(("chembl", "legacy")), default="chembl",
              show_default=True,
              help="chembl: shaped like ChEMBL's activities export (its column order and "
                   "proportions); legacy: molstream's first generator, byte for byte.")
def sample(rows: int, seed: int, out: Path, shape: str) -> None:
    """Write a deterministic ChEMBL-like sample file (the same rows, seed and shape give the
    same bytes)."""
    from .sample import generate

    generate(out, rows, seed=seed, shape=shape)
    click.echo(str(out))


@main.command("report")
@click.argument("ingest_id")
@click.option("--database-url", envvar="MOLSTREAM_DATABASE_URL")
def show_report(ingest_id: str, database_url: str | None) -> None:
    """Print the report of an ingest from the database."""
    from .db import make_engine
    from .report import build, format_table

    engine = make_engine(_settings(database_url=database_url).database_url)
    click.echo(format_table(build(engine, ingest_id)))
