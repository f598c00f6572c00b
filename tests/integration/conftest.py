"""Helpers for pipeline tests: settings isolated per test (own topics, group, database)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import waits
from molstream import fetcher
from molstream.config import Mode, Settings, Topics
from molstream.db import create_schema, make_engine
from molstream.fetch import Credentials
from molstream.worker import Worker

#: The test servers listen on 127.0.0.1: the fetcher refuses it unless allowed.
LOOPBACK = ("127.0.0.0/8", "::1/128")


class Pipeline:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def fetch(self, url: str, ingest_id: str, *, mode: Mode = Mode.UPSERT,
              credentials: Credentials | None = None) -> fetcher.FetchResult:
        return fetcher.run(url, ingest_id=ingest_id, settings=self.settings,
                           credentials=credentials or Credentials(), mode=mode)

    def work(self, *ingest_ids: str, idle_timeout_s: float = 60) -> list[dict]:
        worker = Worker(self.settings)
        worker.run(until_complete=ingest_ids, idle_timeout_s=idle_timeout_s)
        done = {r["ingest_id"] for r in worker.completed}
        assert set(ingest_ids) <= done, f"ingests {set(ingest_ids) - done} did not complete"
        return worker.completed

    def ingest(self, url: str, ingest_id: str, **kw) -> dict:
        self.fetch(url, ingest_id, **kw)
        return self.work(ingest_id)[-1]

    def read_topic(self, topic: str, *, timeout_s: float = waits.READ_TIMEOUT_S) -> list[dict]:
        """Every message the topic holds now (up to its end offsets), not whatever arrives
        before a quiet spell."""
        return waits.topic_json(self.settings.kafka_bootstrap, topic, timeout_s=timeout_s)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path: Path):
    """A fresh database with molstream's schema: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def make_pipeline(tmp_path: Path, kafka_bootstrap: str, redis_url: str):
    def make(*, database_url: str | None = None, redis: bool = True, batch_size: int = 1000,
             **overrides) -> Pipeline:
        prefix = f"t{uuid.uuid4().hex[:10]}"
        settings = Settings(
            kafka_bootstrap=kafka_bootstrap, topics=Topics(prefix=prefix),
            database_url=database_url or f"sqlite:///{tmp_path / f'{prefix}.sqlite'}",
            redis_url=redis_url if redis else "", reports_dir=tmp_path / "reports",
            work_dir=tmp_path / "work", worker_group=f"{prefix}-worker",
            batch_size=batch_size, retries=1,
            # the test servers are on 127.0.0.1 (refused by default), plain ftp:// with a password
            **{"allowed_networks": LOOPBACK, "allow_insecure_credentials": True, **overrides})
        return Pipeline(settings)
    return make
