"""The command line's logging: kafka-python's lost-connection tracebacks become one line."""

from __future__ import annotations

import logging

from molstream.cli import _MemberDropped, _OneLineKafkaErrors


def _record(name: str) -> logging.LogRecord:
    try:
        raise ConnectionResetError(104, "Connection reset by peer")
    except ConnectionResetError:
        import sys

        return logging.LogRecord(name, logging.ERROR, __file__, 1, "%s: Error receiving",
                                 ("<conn>",), sys.exc_info())


def test_a_kafka_traceback_becomes_one_line():
    record = _record("kafka.net.transport")
    assert _OneLineKafkaErrors().filter(record)
    text = logging.Formatter("%(name)s: %(message)s").format(record)
    assert text == ("kafka.net.transport: <conn>: Error receiving: ConnectionResetError: "
                    "[Errno 104] Connection reset by peer")
    assert "Traceback" not in text


def test_our_own_tracebacks_are_kept():
    record = _record("molstream.worker")
    _OneLineKafkaErrors().filter(record)
    assert "Traceback" in logging.Formatter().format(record)


def test_a_member_dropped_for_silence_is_said_and_rebalance_chatter_is_not():
    """kafka-python 3.0.12's own words (coordinator/base.py): what the bench counts as
    member_timeouts, and the heartbeat warnings every rebalance brings."""
    def warning(msg: str) -> logging.LogRecord:
        return logging.LogRecord("kafka.coordinator.heartbeat", logging.WARNING, __file__, 1,
                                 msg, ("g",) if "%s" in msg else None, None)

    kept = _MemberDropped()
    assert kept.filter(warning("Heartbeat session expired, marking coordinator dead"))
    assert kept.filter(warning("Consumer poll timeout has expired. This means the time between "
                               "subsequent calls to poll() was longer than the configured "
                               "max_poll_interval_ms"))
    assert not kept.filter(warning("Heartbeat failed for group %s: generation id is not  current."))
    assert not kept.filter(warning("Heartbeat: local member_id was not recognized; this consumer "
                                   "needs to re-join"))
