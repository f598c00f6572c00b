"""The fetcher: download → scan → (convert to HDF5 with vaex → validate → publish) → end marker.

One call of `run` is one ingest. Everything the worker needs to be idempotent is decided here:
batches are cut from the file at fixed row positions and numbered in order, so running the
fetcher again for the same ingest id publishes the same batches under the same keys.
A failure (unreachable server, wrong password, missing file, missing column, broken CSV) is
published as a `failed` event and raised; a failure before publishing starts writes nothing.

The file is read twice. The scan (`molstream.read.scan`) reads all of it, converting nothing,
and every way a file can be broken as a whole shows there, before the first batch is
published: a structurally broken file ends with nothing applied. The second pass converts,
validates and publishes block by block, so the worker starts applying while the rest of the
file is still being converted. It can only fail for reasons outside the file (a full disk,
the process killed), like any run cut short: the batches published so far are applied, the
ingest does not complete, and a run again with the same ingest id finishes it.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from . import metrics
from .addresses import AddressPolicy
from .config import Mode, Settings
from .contract import LINE, ContractError, Rejection, reason_class, validate
from .fetch import Credentials, FetchError, Limits, download, redact
from .fetch.check import probe, resolve
from .fetch.common import Validator, without_userinfo
from .fetch.identity import (
    Identity,
    file_sha256,
    unchanged_by_sha256,
    unchanged_by_validators,
)
from .kafka_access import check_access
from .kafka_full import StorageWatch
from .kafka_security import KafkaAccessError
from .messages import EndOfIngest, RowBatch
from .progress import Bar
from .publish import Publisher, PublishError, ensure_topics, topic_options
from .read import Converter, Format, ReadError, scan
from .scratch import HEADROOM_BYTES, Scratch, ScratchFull, parse_quantity
from .seen_ids import SeenIds

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 1.0


@dataclass(frozen=True)
class FetchResult:
    ingest_id: str
    rows_total: int
    rows_published: int
    rows_rejected: int
    batches: int
    seconds: dict[str, float]
    # What proved the source the one loaded before (the run published nothing), or None.
    unchanged: str | None = None
    source: dict | None = None  # the file's identity (molstream.fetch.identity)


class IngestFailed(RuntimeError):
    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage} failed: {reason}")
        self.stage, self.reason = stage, reason


class DuplicateFilter:
    """Rejects an activity_id seen earlier in the same file (the first occurrence wins).

    The ids seen are a compressed bitmap, and the line each was first seen on is kept on disk
    and read back only for a repeat (molstream.seen_ids): memory stays a few MB whatever the
    file's size and row order. `directory`: where the lines go (the ingest's work directory;
    a temporary directory when None). A chunk whose ids are all above every id seen skips the
    bitmap's look-up.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self._seen = SeenIds(directory)

    def filter(self, rows: pa.Table) -> tuple[pa.Table, list[Rejection]]:
        ids = rows.column("activity_id").to_numpy()
        lines = rows.column(LINE).to_numpy()
        if not len(ids):
            return rows, []
        unique, first = np.unique(ids, return_index=True)  # each id's first position here
        before = self._seen.earlier(unique)  # ids an earlier chunk kept
        repeated = np.ones(len(ids), dtype=bool)
        repeated[first] = False
        earlier = np.isin(ids, before) if len(before) else np.zeros(len(ids), dtype=bool)
        earlier_lines = self._seen.first_lines(before)  # read back from disk
        dup = earlier | repeated
        at = np.flatnonzero(dup)
        first_lines = lines[first[np.searchsorted(unique, ids[at])]]  # seen in this chunk...
        if len(before):  # ...or in an earlier one
            where = np.minimum(np.searchsorted(before, ids[at]), len(before) - 1)
            first_lines = np.where(earlier[at], earlier_lines[where], first_lines)
        rejections = [Rejection(line, f"duplicate activity_id {i} (first seen on line {f})",
                                {"activity_id": str(i)})
                      for line, i, f in zip(lines[at].tolist(), ids[at].tolist(),
                                            first_lines.tolist(), strict=True)]
        keep = ~dup
        self._seen.add(ids[keep], lines[keep])
        return (rows.filter(pa.array(keep)) if dup.any() else rows), rejections

    def close(self) -> None:
        """Deletes the lines kept on disk."""
        self._seen.close()


class _Stage:
    """One long stage's progress: the bar, the fetcher's counters, and an advisory event
    (`downloading`, `scanning`) at most every PROGRESS_EVERY_S, for the IngestRequest's
    status. Called with the figure so far (bytes received, rows scanned)."""

    def __init__(self, publisher: Publisher, ingest_id: str, kind: str, bar: Bar,
                 counter) -> None:
        self._publisher, self._ingest_id, self._kind = publisher, ingest_id, kind
        self._bar, self._counter = bar, counter
        self._last, self._sent = 0, 0.0

    def __call__(self, done: int, total: int | None = None) -> None:
        self._bar.update_to(done, total)
        if done > self._last:
            self._counter.inc(done - self._last)
        self._last = done  # a download that starts over counts its bytes again
        now = time.monotonic()
        if now - self._sent >= PROGRESS_EVERY_S:
            self._sent = now
            fields = ({"bytes_done": done, "bytes_total": total} if self._kind == "downloading"
                      else {"rows_scanned": done})
            self._publisher.event(self._kind, self._ingest_id, track=False, **fields)


def _rejected(publisher: Publisher, ingest_id: str, rejections: list[Rejection]) -> int:
    publisher.send_rejections(ingest_id, rejections)
    for r in rejections:
        metrics.ROWS_REJECTED.labels(reason_class(r.reason)).inc()
    return len(rejections)


def run(url: str, *, ingest_id: str, settings: Settings, credentials: Credentials,
        mode: Mode | None = None, batch_size: int | None = None,
        show_progress: bool = False, loaded: Sequence[Identity] = (),
        force: bool = False) -> FetchResult:
    """One ingest of `url`. `loaded`: the identities of the files loaded before (oldest
    first); a source they prove unchanged ends the run at once, publishing no rows (an
    `unchanged` event instead), unless `force`. A URL glob stands for its newest match."""
    mode = mode or settings.mode
    batch_size = batch_size or settings.batch_size
    if batch_size < 1:
        raise ValueError("batch size must be at least 1")
    started = time.time()
    seconds: dict[str, float] = {}
    work = settings.work_dir / _safe_name(ingest_id)
    work.mkdir(parents=True, exist_ok=True)
    try:
        # Kafka refusing us (login, certificate, ACL) ends the run now, before the download.
        # (A password file that changed since it was read is read again: the run uses that.)
        settings = replace(settings, kafka_security=check_access(
            settings.kafka_bootstrap, settings.kafka_security,
            topics=dict.fromkeys((settings.topics.rows, settings.topics.rejected,
                                  settings.topics.events), ("WRITE",))))
        ensure_topics(settings.kafka_bootstrap, settings.topics, **topic_options(settings))
        publisher = Publisher(settings.kafka_bootstrap, settings.topics,
                              client_id="molstream-fetcher",
                              delivery_timeout_s=settings.kafka_outage_s,
                              security=settings.kafka_security)
    except (PublishError, KafkaAccessError) as e:  # nothing downloaded or published yet
        log.error("ingest %s: %s", ingest_id, e)
        raise IngestFailed("publish", str(e)) from None
    stage = "fetch"
    storage = StorageWatch.install()  # a broker whose log volume is full, told from an outage
    rows_total = 0
    try:
        publisher.event("started", ingest_id, source=redact(url))
        scratch = Scratch(settings.work_dir, parse_quantity(settings.scratch_limit)
                          if settings.scratch_limit else None)
        limits = Limits(max_bytes=settings.max_download_bytes,
                        timeout_s=settings.download_timeout_s, retries=settings.retries,
                        ca_file=settings.source_ca_file, allowed_hosts=settings.allowed_hosts,
                        known_hosts=settings.source_known_hosts,
                        pinned_known_hosts=settings.known_hosts,
                        addresses=AddressPolicy.parse(
                            allowed_networks=settings.allowed_networks,
                            internal_hosts=settings.internal_hosts,
                            denied_networks=settings.denied_networks),
                        insecure_credentials=settings.allow_insecure_credentials,
                        room=lambda n: scratch.require(n + HEADROOM_BYTES, "the download and "
                                                       "its conversion"))
        known = () if force else tuple(loaded)
        pattern = url
        url, before, why = resolve(url, credentials=credentials, limits=limits, loaded=known)
        if why is None and known:
            before = before or probe(url, credentials=credentials, limits=limits)
            why = unchanged_by_validators(before, known)
        if why is not None:
            return _unchanged(publisher, ingest_id, before or Identity.of(pattern), why,
                              started, work)
        with Bar(show_progress, "download", unit="B") as bar:
            path = download(url, work / "download", credentials=credentials, limits=limits,
                            progress=_Stage(publisher, ingest_id, "downloading", bar,
                                            metrics.BYTES_DOWNLOADED))
        identity = _identity(url, path, work / "download", before)
        if why := unchanged_by_sha256(identity, known):
            return _unchanged(publisher, ingest_id, identity, why, started, work)
        publisher.event("identified", ingest_id, **identity.event_fields())
        seconds["download"] = time.time() - started
        metrics.STAGE_SECONDS.labels("download").set(seconds["download"])

        stage = "read"
        try:
            scratch.require(HEADROOM_BYTES, "converting the download to HDF5")
        except ScratchFull as e:
            raise ReadError(str(e)) from None
        t = time.time()
        with Bar(show_progress, "read", unit="rows") as bar:
            scanning = _Stage(publisher, ingest_id, "scanning", bar, metrics.ROWS_READ)
            scanned = scan(path, max_decompressed_bytes=settings.max_decompressed_bytes,
                           on_block=scanning, fmt=input_format(settings))
        scanning(scanned.rows_total)  # the count of a file read in one block, too
        for warning in scanned.warnings:
            log.warning("%s: %s", redact(url), warning)
        seconds["read"] = time.time() - t
        metrics.STAGE_SECONDS.labels("read").set(seconds["read"])

        stage = "publish"
        t = time.time()
        rows_total = scanned.rows_total
        rejected = _rejected(publisher, ingest_id, scanned.rejections)
        published, seq, last_event = 0, 0, 0.0
        duplicates = DuplicateFilter(work / "seen-ids")
        converter = Converter(scanned, work / "hdf5")
        with Bar(show_progress, "publish", unit="rows", total=rows_total) as bar:
            for chunk in converter.chunks(batch_size):
                valid, bad = validate(chunk, max_field_bytes=settings.max_field_bytes,
                                      delimiter=scanned.fmt.delimiter or ",")
                valid, dups = duplicates.filter(valid)
                bad = converter.take_rejections() + bad + dups
                if bad:
                    rejected += _rejected(publisher, ingest_id, bad)
                if valid.num_rows:
                    with metrics.PUBLISH_SECONDS.time():
                        publisher.send_batch(RowBatch(ingest_id, seq, mode, valid, started,
                                                      rows_total))
                    seq += 1
                    published += valid.num_rows
                    metrics.ROWS_PUBLISHED.inc(valid.num_rows)
                bar.update(chunk.num_rows)
                if time.monotonic() - last_event >= PROGRESS_EVERY_S:
                    last_event = time.monotonic()
                    publisher.event("publishing", ingest_id, rows_total=rows_total,
                                    rows_published=published, rows_rejected=rejected)
            if late := converter.take_rejections():  # not UTF-8, in the file's last rows
                rejected += _rejected(publisher, ingest_id, late)
            publisher.send_end(EndOfIngest(
                ingest_id, mode, redact(url), seq, rows_total, published, rejected, started,
                # a glob's match names its release when spec.release does not; a mirror's
                # source is the URL as given (a glob's pattern: every release one source)
                release=settings.release or identity.release or None,
                mirror_key=settings.mirror_key or redact(pattern),
                source_identity=identity.event_fields()))  # (its URL redacted)
        duplicates.close()
        seconds["publish"] = time.time() - t
        metrics.STAGE_SECONDS.labels("publish").set(seconds["publish"])
        publisher.event("published", ingest_id, rows_total=rows_total, rows_published=published,
                        rows_rejected=rejected, batches=seq)
        publisher.wait_for_acks()
        shutil.rmtree(work, ignore_errors=True)
        return FetchResult(ingest_id, rows_total, published, rejected, seq, seconds,
                           source=identity.to_dict())
    except (FetchError, ReadError, ContractError, PublishError) as e:
        full = isinstance(e, PublishError) and storage.explain(
            e, bootstrap=settings.kafka_bootstrap,
            rows=rows_total or None, acks=publisher.acks)
        reason = str(e)
        log.error("ingest %s: %s failed: %s", ingest_id, stage, reason)
        # Kafka refusing our messages will likely refuse this one too: do not wait long for it
        # (a broker whose log volume is full has shut down).
        _best_effort_failed_event(publisher, ingest_id, stage, reason,
                                  timeout_s=5 if full else 30 if isinstance(e, PublishError)
                                  else 600)
        if stage != "fetch":
            shutil.rmtree(work, ignore_errors=True)  # keep a partial download to resume
        raise IngestFailed(stage, reason) from None
    finally:
        storage.remove()
        publisher.close()


def _identity(url: str, path: Path, dest: Path, before: Identity | None) -> Identity:
    """The downloaded file's identity: the validators of the response it came from (as kept
    beside the download), its size, the sha256 of its bytes."""
    release = before.release if before else None
    validator = Validator.load(dest, without_userinfo(url)) if path == dest else None
    size = path.stat().st_size
    if validator is not None:
        found = Identity.from_validator(validator, size=size, release=release)
    elif path != dest:  # a file:// source, read where it is
        found = probe(url, limits=Limits(max_bytes=0, timeout_s=1)) or Identity.of(url)
    else:
        found = Identity.of(url, size=size, release=release)
    return found.with_sha256(file_sha256(path))


def _unchanged(publisher: Publisher, ingest_id: str, identity: Identity, why: str,
               started: float, work: Path) -> FetchResult:
    """The source is the one loaded before: say so, publish nothing else."""
    log.info("ingest %s: %s is unchanged (%s); nothing to publish", ingest_id,
             redact(identity.url), why)
    publisher.event("unchanged", ingest_id, matched=why, **identity.event_fields())
    publisher.wait_for_acks()
    shutil.rmtree(work, ignore_errors=True)
    return FetchResult(ingest_id, 0, 0, 0, 0, {"check": time.time() - started}, unchanged=why,
                       source=identity.to_dict())


def input_format(settings: Settings) -> Format:
    """The input's format as the settings give it (what they leave empty is found out)."""
    return Format(delimiter=settings.delimiter or None, null_tokens=settings.null_tokens,
                  member=settings.zip_member or None, columns=settings.columns)


def _best_effort_failed_event(publisher: Publisher, ingest_id: str, stage: str,
                              reason: str, *, timeout_s: float) -> None:
    try:
        publisher.event("failed", ingest_id, stage=stage, reason=reason)
        publisher.wait_for_acks(timeout_s)
    except Exception as e:  # the ingest already failed; say so in the log at least
        log.error("could not publish the failure event: %s", e)


def _safe_name(ingest_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", ingest_id)[:200] or "ingest"


__all__ = ["run", "FetchResult", "IngestFailed", "DuplicateFilter"]
