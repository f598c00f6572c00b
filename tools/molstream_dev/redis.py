"""Debian's redis-server on loopback, without persistence (it is a cache)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ._process import Managed, free_port, require
from .kafka import _run_dir


class RedisServer(Managed):
    name = "redis"

    def __init__(self, *, port: int | None = None) -> None:
        super().__init__()
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="redis-", dir=_run_dir()))
        self.log = self.dir / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [require("redis-server", "tools/provision/services.sh"), "--port", str(self.port),
                "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.dir), "--maxmemory", "256mb",
                "--maxmemory-policy", "allkeys-lru"]

    def port_to_wait(self) -> int:
        return self.port

    def flush(self) -> None:
        import redis

        redis.Redis.from_url(self.url).flushall()
