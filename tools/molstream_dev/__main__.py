"""Run the local services by hand:

    python -m molstream_dev up kafka redis ftp --ftp-root DIR [--tls] [--format env|json]
    python -m molstream_dev prune      # remove run dirs under .cache/run left by dead sessions

`up` prints the addresses (shell `export` lines, or one JSON object) once everything answers,
then runs until Ctrl-C or SIGTERM and stops what it started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import signal
import sys
import threading
from pathlib import Path

from ._process import ServiceError, prune_run_dirs

SERVICES = ("kafka", "redis", "postgres", "ftp", "http")


def _start(name: str, args: argparse.Namespace, stack: contextlib.ExitStack) -> dict[str, str]:
    """Start one service; return what a client needs, keyed by environment variable."""
    if name == "kafka":
        from .kafka import KafkaServer

        k = stack.enter_context(KafkaServer(port=args.kafka_port))
        return {"MOLSTREAM_KAFKA_BOOTSTRAP": k.bootstrap, "MOLSTREAM_TEST_KAFKA": k.bootstrap}
    if name == "redis":
        from .redis import RedisServer

        r = stack.enter_context(RedisServer(port=args.redis_port))
        return {"MOLSTREAM_REDIS_URL": r.url, "MOLSTREAM_TEST_REDIS": r.url}
    if name == "postgres":
        from .postgres import PostgresServer

        pg = stack.enter_context(PostgresServer(port=args.postgres_port))
        return {"MOLSTREAM_DATABASE_URL": pg.url, "MOLSTREAM_TEST_POSTGRES": pg.url}
    if name == "ftp":
        from .ftp import FtpServer

        if not args.ftp_root:
            raise SystemExit("ftp needs --ftp-root DIR")
        f = stack.enter_context(FtpServer(args.ftp_root, tls=args.tls, port=args.ftp_port,
                                          user=args.ftp_user, password=args.ftp_password))
        env = {"MOLSTREAM_FTP_URL": f.url(with_credentials=False),
               "MOLSTREAM_SOURCE_USERNAME": f.user, "MOLSTREAM_SOURCE_PASSWORD": f.password}
        return env | ({"MOLSTREAM_SOURCE_CA_FILE": str(f.cert)} if f.cert else {})
    if name == "http":
        from .http import HttpServer

        root = args.http_root or args.ftp_root
        if not root:
            raise SystemExit("http needs --http-root DIR")
        h = stack.enter_context(HttpServer(root, tls=args.tls, port=args.http_port))
        return {"MOLSTREAM_HTTP_URL": h.url()} | (
            {"MOLSTREAM_SOURCE_CA_FILE": str(h.cert)} if h.cert else {})
    raise SystemExit(f"unknown service {name!r}; choose from {', '.join(SERVICES)}")


def up(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with contextlib.ExitStack() as stack:
        found: dict[str, dict[str, str]] = {}
        try:
            for name in dict.fromkeys(args.services):  # once each, in the order given
                print(f"starting {name} …", file=sys.stderr, flush=True)
                found[name] = _start(name, args, stack)
        except ServiceError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        if args.format == "json":
            print(json.dumps(found, indent=2), flush=True)
        else:
            merged = {k: v for env in found.values() for k, v in env.items()}
            print("\n".join(f"export {k}={shlex.quote(v)}" for k, v in merged.items()),
                  flush=True)
        print("running; Ctrl-C stops everything", file=sys.stderr, flush=True)
        stop.wait()
        print("stopping …", file=sys.stderr, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m molstream_dev", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    u = sub.add_parser("up", help="start services on 127.0.0.1 until Ctrl-C")
    u.add_argument("services", nargs="+", choices=SERVICES, metavar="SERVICE",
                   help=f"any of: {', '.join(SERVICES)}")
    u.add_argument("--ftp-root", type=Path)
    u.add_argument("--http-root", type=Path, help="defaults to --ftp-root")
    u.add_argument("--tls", action="store_true", help="FTPS and HTTPS (self-signed certificate)")
    u.add_argument("--ftp-user", default="molstream")
    u.add_argument("--ftp-password", default="s3cret-ftp")
    u.add_argument("--format", choices=("env", "json"), default="env")
    for name in SERVICES:
        u.add_argument(f"--{name}-port", type=int, default=None,
                       help=f"fixed {name} port (default: a free one)")
    sub.add_parser("prune", help="remove run dirs under .cache/run left by dead sessions")
    args = p.parse_args(argv)
    if args.command == "prune":
        for d in prune_run_dirs():
            print(f"removed {d}")
        return 0
    return up(args)


if __name__ == "__main__":
    sys.exit(main())
