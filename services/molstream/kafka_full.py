"""Kafka's log volume full, as the fetcher sees it, said in one line instead of an outage.

What a broker does when the disk of its log directory fills (Apache Kafka 3.9, tested with the
real broker on a small tmpfs: tests/reliability/test_kafka_full.py): the write fails with
"No space left on device", the broker answers that produce request with KAFKA_STORAGE_ERROR,
takes the directory offline, and, since it was its only one (the bundled broker's single
volume; in KRaft its metadata log lives there too), shuts down ("all log dirs ... have
failed"). Its clients then meet a refused connection, which is all an outage looks like. Nothing
acknowledged is lost: the log up to the failed write stays on the volume, and the broker serves
it again once it has room and is started.

kafka-python retries KAFKA_STORAGE_ERROR (another replica may lead the partition on a real
cluster) and only logs it, so `StorageWatch` listens to its producer's log for it. A publish
that then fails (the outage outlasting MOLSTREAM_KAFKA_OUTAGE_S) while a partition that met the
storage error has had no acknowledgement since (a retry that got past it, the partition led
from another replica or log directory, clears it), or that fails with the storage error
itself, is worded as what it is, with
what the file's rows need there, and made permanent: the fetcher exits with status 3
(the Job is not retried into the same full disk) and the operator shows reason KafkaFull.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from kafka.errors import KafkaStorageError

from .publish import PublishError

# Bytes a row takes on the rows topic (Arrow IPC batches compressed with zstd; the producer
# adds no compression): bench/sizes.py measured 46 MB per 1M ChEMBL-shaped rows, 34 MB for the
# real rows, rounded up.
BYTES_PER_ROW = 50
# The words the fetcher's error line starts with; molstream_operator.job_failures reads them.
PREFIX = "Kafka's log volume is full"
_SENDER = "kafka.producer.sender"
_NAME = KafkaStorageError.__name__


class StorageWatch(logging.Handler):
    """Notes the broker's KAFKA_STORAGE_ERROR answers while it is installed (a context
    manager around the fetcher's publishing)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen = 0
        self.partition: str | None = None
        # partition (str of its TopicPartition; "" if not said) → time.monotonic() of its
        # latest storage error
        self.errors: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if any(a == _NAME or isinstance(a, KafkaStorageError) for a in args) \
                or _NAME in str(record.msg):
            self.seen += 1
            # kafka-python's line: (sender, topic-partition, attempts left, error, message)
            self.partition = str(args[1]) if len(args) > 1 else self.partition
            self.errors[str(args[1]) if len(args) > 1 else ""] = time.monotonic()

    @classmethod
    def install(cls) -> StorageWatch:
        watch = cls()
        logging.getLogger(_SENDER).addHandler(watch)
        return watch

    def remove(self) -> None:
        logging.getLogger(_SENDER).removeHandler(self)

    def __enter__(self) -> StorageWatch:
        logging.getLogger(_SENDER).addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def standing(self, acks: Mapping[str, float]) -> list[str]:
        """The partitions whose latest storage error no acknowledgement followed (`acks`:
        Publisher.acks); "" for an error that named none, unless any ack followed it."""
        latest = max(acks.values(), default=None)
        standing = []
        for partition, at in self.errors.items():
            acked = acks.get(partition) if partition else latest
            if acked is None or acked <= at:
                standing.append(partition)
        return standing

    def explain(self, error: PublishError, *, bootstrap: str, rows: int | None,
                acks: Mapping[str, float] | None = None) -> bool:
        """Words `error` (a publish that failed) as Kafka's full log volume, and makes it
        permanent, when the broker answered KAFKA_STORAGE_ERROR for a partition that has had
        no acknowledgement since (`acks`: Publisher.acks), or the error is that; whether it
        did. A refusal (already permanent) keeps its own words. `rows`: the file's (a rerun
        publishes them all again)."""
        if error.permanent:
            return False
        standing = self.standing(acks or {})
        if not (standing or _NAME in str(error)):
            return False
        partition = next((p for p in standing if p), None) or self.partition
        need = (f"the file's {rows:,} rows need about {_size(rows * BYTES_PER_ROW)} there, "
                "besides what the topics keep of earlier ingests for their retention (7 days "
                "by default)" if rows else "it needs room for the file's rows")
        line = (f"{PREFIX}: Kafka at {bootstrap} could not write to its log directory "
                f"(KAFKA_STORAGE_ERROR for {partition or 'a partition'}: a full or "
                f"failed disk; a broker whose only log directory fails shuts down): {need}; "
                "give Kafka's log volume more space (the chart's kafka.persistence.size), start "
                "the broker and run the ingest again: what it acknowledged is kept")
        error.args = (line,)
        error.permanent = True
        return True


def _size(n: float) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"
