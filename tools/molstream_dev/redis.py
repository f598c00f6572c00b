"""Debian's redis-server on loopback, without persistence (the pipeline uses it as a cache).

    with RedisServer() as r:
        r.url          # "redis://127.0.0.1:PORT/0"
        r.flush()      # lose every key, as a restarted cache would
"""

from __future__ import annotations

from pathlib import Path

from ._process import Managed, free_port, require


class RedisServer(Managed):
    name = "redis"

    def __init__(self, *, port: int | None = None, data_dir: Path | None = None,
                 maxmemory: str = "256mb") -> None:
        super().__init__(data_dir)
        self.port = port or free_port()
        self.maxmemory = maxmemory

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [require("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                "--maxmemory", self.maxmemory, "--maxmemory-policy", "allkeys-lru",
                "--protected-mode", "no", "--daemonize", "no"]

    def flush(self) -> None:
        """FLUSHALL on every database."""
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            client.flushall()
        finally:
            client.close()
