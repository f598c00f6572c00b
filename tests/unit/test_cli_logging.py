"""The command line's logging: kafka-python's lost-connection tracebacks become one line."""

from __future__ import annotations

import logging

from molstream.cli import _OneLineKafkaErrors


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
