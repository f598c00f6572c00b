"""Fixtures of the reliability suite (helpers live in harness.py)."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
_INTEGRATION = _HERE.parent / "integration"
for _path in (_HERE, _INTEGRATION):  # harness.py; expected.py (what a CSV implies)
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from harness import Proc, TopicWatch  # noqa: E402
from molstream_dev.postgres import create_database, drop_database  # noqa: E402

# The pipeline suite's `make_pipeline` fixture (settings isolated per test), shared, not copied.
_spec = importlib.util.spec_from_file_location("_integration_conftest",
                                               _INTEGRATION / "conftest.py")
_integration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_integration)
make_pipeline = _integration.make_pipeline


@pytest.fixture
def procs(tmp_path: Path) -> Iterable[Callable[..., Proc]]:
    """Start molstream processes; any still running at the end of the test is killed."""
    started: list[Proc] = []

    def start(name: str, args: list[str], env: dict[str, str]) -> Proc:
        p = Proc(name, args, env, tmp_path / "logs")
        started.append(p)
        return p

    yield start
    for p in started:
        if p.alive:
            p.kill()


@pytest.fixture
def topic_watch(kafka_bootstrap: str):
    opened: list[TopicWatch] = []

    def open_(topic: str) -> TopicWatch:
        w = TopicWatch(kafka_bootstrap, topic)
        opened.append(w)
        return w

    yield open_
    for w in opened:
        w.close()


@pytest.fixture
def db_url(postgres_server) -> Iterable[str]:
    """A fresh PostgreSQL database of the test's own (beside `postgres_url`'s), dropped after."""
    server = os.environ.get("MOLSTREAM_TEST_POSTGRES") or postgres_server.admin_dsn
    url = create_database(server)
    yield url
    drop_database(server, url.rsplit("/", 1)[1])
