"""Dimension id look-ups: an in-process dict in front of Redis in front of the database.

Redis is only a cache. Keys are namespaced by the database's instance id, so two databases
sharing one Redis never see each other's ids. Ids are remembered only after the transaction
that created them commits. When Redis is unreachable the worker goes on with the process cache
and the database, and tries Redis again after a pause rather than on every batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import redis

log = logging.getLogger(__name__)

Value = Any  # str for text dimensions, float for phase


class IdCache:
    RETRY_AFTER_S = 5.0

    def __init__(self, redis_url: str | None, *, namespace: str) -> None:
        self._local: dict[str, dict[Value, int]] = {}
        self._namespace = namespace
        self._redis = (redis.Redis.from_url(redis_url, socket_timeout=1.0,
                                            socket_connect_timeout=1.0)
                       if redis_url else None)
        self._down_until = 0.0
        self.stats = {"local": 0, "redis": 0, "miss": 0, "redis_errors": 0}

    def _key(self, dimension: str) -> str:
        return f"molstream:{self._namespace}:{dimension}"

    @staticmethod
    def _field(value: Value) -> str:
        return repr(value) if isinstance(value, float) else value

    def lookup(self, dimension: str, values: Iterable[Value]) -> dict[Value, int]:
        local = self._local.setdefault(dimension, {})
        found = {v: local[v] for v in values if v in local}
        missing = [v for v in values if v not in found]
        self.stats["local"] += len(found)
        if missing and self._redis_ok():
            try:
                answers = self._redis.hmget(self._key(dimension),
                                            [self._field(v) for v in missing])
            except redis.RedisError as e:
                self._mark_down(e)
            else:
                for v, a in zip(missing, answers, strict=True):
                    if a is not None:
                        found[v] = local[v] = int(a)
                        self.stats["redis"] += 1
        self.stats["miss"] += len(missing) - sum(1 for v in missing if v in found)
        return found

    def remember(self, dimension: str, ids: Mapping[Value, int]) -> None:
        if not ids:
            return
        self._local.setdefault(dimension, {}).update(ids)
        if self._redis_ok():
            try:
                self._redis.hset(self._key(dimension),
                                 mapping={self._field(v): i for v, i in ids.items()})
            except redis.RedisError as e:
                self._mark_down(e)

    def forget(self, dimension: str, values: Iterable[Value]) -> None:
        """Drop entries found wrong (molstream.dimensions), here and in Redis."""
        values = list(values)
        local = self._local.get(dimension, {})
        for v in values:
            local.pop(v, None)
        if values and self._redis_ok():
            try:
                self._redis.hdel(self._key(dimension), *[self._field(v) for v in values])
            except redis.RedisError as e:
                self._mark_down(e)

    def forget_local(self) -> None:
        self._local.clear()

    def _redis_ok(self) -> bool:
        return self._redis is not None and time.monotonic() >= self._down_until

    def _mark_down(self, error: Exception) -> None:
        self.stats["redis_errors"] += 1
        if self._down_until == 0.0 or time.monotonic() >= self._down_until:
            log.warning("Redis unavailable (%s): going on with the database; retrying in %.0fs",
                        error, self.RETRY_AFTER_S)
        self._down_until = time.monotonic() + self.RETRY_AFTER_S

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
