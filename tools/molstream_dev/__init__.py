"""Real services on loopback for tests, `make local` and benchmarks (see DESIGN.md, "Real
services everywhere"):

    from molstream_dev import KafkaServer, RedisServer
    with KafkaServer() as kafka, RedisServer() as redis:
        kafka.bootstrap, redis.url

Classes are imported on first use: the package also ships in the image (molstream_dev.reload),
where none of this runs.
"""

from importlib import import_module

_WHERE = {"KafkaServer": "kafka", "RedisServer": "redis", "PostgresServer": "postgres",
          "PgBouncer": "pgbouncer", "FtpServer": "ftp", "HttpServer": "http",
          "SftpServer": "sftp", "ServiceError": "_process"}
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
