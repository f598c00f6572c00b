"""`python -m bench`: run every measurement of issue 5 in one go and report.

1. the generated files (N and 2N rows, ChEMBL-shaped unless --shape legacy; cached under
   .cache/bench/data);
2. Kafka, Redis and an FTP server serving those files, on 127.0.0.1 (molstream_dev);
3. end to end at N, then at 2N (memory growth), each with a fresh database and fresh topics;
4. the limit: the N rows bulk-loaded into a fresh database of the same schema (indexes kept
   up to date, then dropped and rebuilt after: the faster counts);
4b. PostgreSQL: end to end at N with 1 and with 2 workers (4 partitions, lock waits sampled),
   and its limit, the N rows COPY'd into the eight tables (bench.pg);
4c. row orders: the same N rows in id order, sorted by target and shuffled (bench.data.ordered),
   end to end on SQLite and on PostgreSQL (1 worker; 2 in a full run, which measures the id
   order with both), side by side
   (`--rounds`, and `--ab` to alternate two versions of molstream run by run);
5. the baseline: the first BASELINE_ROWS rows of the same file, the seed's way;
6. the table on stdout, bench/results/latest.json and a dated copy.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

from molstream.sample import SHAPES
from molstream_dev._process import CACHE, REPO, prune_run_dirs
from molstream_dev.ftp import FtpServer
from molstream_dev.kafka import KafkaServer
from molstream_dev.postgres import PostgresServer
from molstream_dev.redis import RedisServer

from . import baseline, data, e2e, limit, pg, results

RUNS = CACHE / "bench" / "runs"
# The limits load rows prepared as Python objects, all at once: 24M rows took more than the
# machine's 24 GB. Above this many rows they are measured on the file's first LIMIT_MAX_ROWS.
LIMIT_MAX_ROWS = 4_000_000


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


KEPT = ".kept"  # in a work directory kept with --keep: not a leftover


def _prune_runs(runs: Path = RUNS) -> list[Path]:
    """The work directories (RUNS/<date>-<time>-<pid>) of benches whose process is gone,
    unless kept with --keep."""
    removed = []
    for d in runs.glob("*-*-*") if runs.is_dir() else ():
        try:
            if (d / KEPT).exists():
                continue
            os.kill(int(d.name.rsplit("-", 1)[-1]), 0)
            continue  # that bench still runs
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
        except (ValueError, OverflowError, PermissionError):
            continue
    return removed


def _postgres_e2e(server: PostgresServer, sample: Path, n: int, common: dict,
                  workers_list: tuple[int, ...] = (1, 2), *, keep: bool = False) -> dict:
    """PostgreSQL end to end with 1 and 2 workers (4 partitions), each into a fresh database
    with its lock waits sampled."""
    out = {}
    for workers in workers_list:
        url = server.new_database()
        _log(f"end to end into PostgreSQL, {workers} worker(s), 4 partitions")
        out[workers] = e2e.run(sample, n, **common, database_url=url, workers=workers,
                               partitions=4, watch=functools.partial(pg.lock_sampler, url))
        _log(f"  {out[workers]['rows_per_s']:,.0f} rows/s, lock waits "
             f"{out[workers]['lock_wait_s']}")
        if not keep:
            shutil.rmtree(out[workers]["dir"], ignore_errors=True)
            _drop(server, url)
    return out


def _drop(server: PostgresServer, url: str) -> None:
    """A run's database, once measured: ~4 GB each at full scale."""
    from sqlalchemy.engine import make_url
    name = make_url(url).database
    if not server.drop_database(name):
        _log(f"could not drop database {name} (still in use?): it stays on the server's disk")


def _summary(run: dict) -> dict:
    return {"seconds": run["seconds"], "rows_per_s": run["rows_per_s"],
            "apply_seconds": run["stage_seconds"]["apply"],
            "fetcher_peak_rss_mb": run["fetcher_peak_rss_mb"],
            "worker_peak_rss_mb": run["worker_peak_rss_mb"],
            "loop_warnings": run.get("loop_warnings", 0),
            "rebalances": run.get("rebalances", 0),
            "member_timeouts": run.get("member_timeouts", 0),
            # where the time went: when the fetcher was done, and each process's CPU seconds
            "fetcher_seconds": run.get("fetcher_seconds"),
            "fetcher_cpu_seconds": run.get("fetcher_cpu_seconds"),
            "worker_cpu_seconds": run.get("worker_cpu_seconds"),
            "timeline_s": run.get("timeline_s")}


@contextlib.contextmanager
def _code(services: Path | None):
    """Child processes run the molstream of `services` (a services/ directory), if given."""
    if services is None:
        yield
        return
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(services), str(REPO / "tools")])
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


def _orders(server: PostgresServer, files: dict[str, Path], n: int, common: dict, *,
            rounds: int, codes: dict[str, Path | None], known: dict, keep: bool,
            pg_workers: int = 1) -> dict:
    """End to end for each row order on SQLite and PostgreSQL (`pg_workers`, 4 partitions, as
    the PostgreSQL figure above), `rounds` times; with two `codes`, each run of one is next to
    the same run of the other, who goes first alternating. {code: {database: {order: [runs]}}}.
    `known`: runs already made (the id order's, above), used as the first round's."""
    out: dict = {code: {"sqlite": {}, "postgres": {}} for code in codes}
    names = list(codes)
    for r in range(rounds):
        for order, sample in files.items():
            for database in ("sqlite", "postgres"):
                for code in (names if r % 2 == 0 else names[::-1]):
                    runs = out[code][database].setdefault(order, [])
                    if r == 0 and (database, order) in known and codes[code] is None:
                        runs.append(_summary(known[database, order]))
                        continue
                    kw = dict(database_url=server.new_database(), partitions=4,
                              workers=pg_workers) if database == "postgres" else {}
                    with _code(codes[code]):
                        run = e2e.run(sample, n, **common, **kw)
                    _log(f"round {r + 1}, {order} order, {database}, {code}: "
                         f"{run['rows_per_s']:,.0f} rows/s ({run['seconds']:.1f} s; fetcher "
                         f"done at {run['fetcher_seconds']:.1f} s; CPU s: fetcher "
                         f"{run['fetcher_cpu_seconds']:.0f}, worker "
                         f"{run['worker_cpu_seconds']:.0f})")
                    runs.append(_summary(run))
                    if not keep:
                        shutil.rmtree(run["dir"], ignore_errors=True)
                        if database == "postgres":
                            _drop(server, kw["database_url"])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=int(os.environ.get("ROWS", 1_000_000)),
                   help="N (default: $ROWS or 1,000,000)")
    p.add_argument("--baseline-rows", type=int,
                   default=int(os.environ.get("BASELINE_ROWS", 2_000)),
                   help="rows given to the baseline (default: $BASELINE_ROWS or 2,000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shape", choices=SHAPES, default=os.environ.get("SHAPE") or "chembl",
                   help="shape of the generated files: chembl (ChEMBL's column order and "
                        "proportions) or legacy (molstream's first generator); default: $SHAPE "
                        "or chembl")
    p.add_argument("--batch-size", type=int, default=None,
                   help="the fetcher's rows per Kafka message (default: molstream's)")
    p.add_argument("--out", type=Path, default=results.RESULTS)
    p.add_argument("--keep", action="store_true",
                   help="keep the runs' logs and SQLite databases (PostgreSQL's, on a server "
                        "of the bench's own, go with it at the end)")
    p.add_argument("--full", action="store_true",
                   help="full scale (make bench-full): no run at 2N, none as TSV")
    p.add_argument("--only", choices=("orders", "sizes"),
                   help="run only this part: the row orders on both databases, or the disk "
                        "each part needs (bench.sizes)")
    p.add_argument("--orders", default=",".join(data.ORDERS),
                   help=f"row orders compared (default: {','.join(data.ORDERS)})")
    p.add_argument("--rounds", type=int, default=1, help="runs of each row order (default 1)")
    p.add_argument("--ab", type=Path, metavar="SERVICES",
                   help="run the row orders with the molstream of SERVICES too (another "
                        "checkout's services/ directory), alternating with this one's")
    p.add_argument("--this", type=Path, metavar="SERVICES",
                   help="with --ab: the services/ directory of the version called this one "
                        "(default: this checkout's)")
    args = p.parse_args(argv)
    if args.only == "sizes":
        from . import sizes
        return sizes.main(["--rows", str(args.rows), "--seed", str(args.seed)])
    n, n2 = args.rows, 2 * args.rows
    orders = [o.strip() for o in args.orders.split(",") if o.strip()]
    codes: dict[str, Path | None] = {"this": None}
    if args.ab:
        codes = {"this": (args.this or REPO / "services").resolve(),
                 "other": args.ab.resolve()}
    only_orders = args.only == "orders"
    k = min(args.baseline_rows, n)
    meta = {"cpus": os.cpu_count(), "load_before": os.getloadavg()[0], "commit": _commit(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seed": args.seed, "shape": args.shape,
            "python": sys.version.split()[0], "batch_size": args.batch_size}

    # At full scale PostgreSQL runs the other orders with 2 workers, as a user of PostgreSQL
    # would (and 1 worker shuffled takes ~18 of the hour); id order is measured with both.
    pg_workers = 2 if args.full and not only_orders else 1
    meta.update(full=args.full, only=args.only, rounds=args.rounds, pg_order_workers=pg_workers,
                ab=str(args.ab) if args.ab else None,
                this=str(codes["this"]) if args.ab else None)
    _log(f"sample files ({args.shape} shape): {n:,} rows"
         + ("" if args.full or only_orders else f" and {n2:,}") + f"; orders {', '.join(orders)}")
    sample = data.sample(n, args.seed, args.shape)
    sample_2n = None if args.full or only_orders else data.sample(n2, args.seed, args.shape)
    files = {order: data.ordered(sample, order, args.seed) for order in orders}
    at_n = at_2n = base = lim = None
    postgres: dict = {}
    # A killed run's Kafka log and databases: tens of GB at full scale
    for stale in [*prune_run_dirs(), *_prune_runs()]:
        _log(f"removed {stale}, left by a run that ended without cleaning up")
    runs = RUNS / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"  # several benches may run
    runs.mkdir(parents=True)
    if args.keep:  # kept even if this run fails: the next bench does not prune it
        (runs / KEPT).touch()
    _log("starting Kafka, Redis and the FTP server on 127.0.0.1")
    kafka = KafkaServer()
    try:
        with kafka, RedisServer() as redis, FtpServer(data.DATA) as ftp:
            common = dict(kafka_bootstrap=kafka.bootstrap, redis_url=redis.url, ftp=ftp, work=runs,
                          batch_size=args.batch_size)
            if not only_orders:
                _log(f"end to end, {n:,} rows")
                at_n = e2e.run(sample, n, **common)
                _log(f"  {at_n['rows_per_s']:,.0f} rows/s")
                if not args.full:
                    _log("the same rows as TSV, zstd")
                    at_tsv = e2e.run(data.tsv_zstd(sample), n, **common)
                    meta["tsv_zstd"] = {k: at_tsv[k] for k in ("rows_per_s", "seconds")}
                    _log(f"  {at_tsv['rows_per_s']:,.0f} rows/s; end to end, {n2:,} rows "
                         "(memory growth)")
                    at_2n = e2e.run(sample_2n, n2, **common)
                    _log(f"  {at_2n['rows_per_s']:,.0f} rows/s")
                    if not args.keep:
                        for run in (at_tsv, at_2n):
                            shutil.rmtree(run["dir"], ignore_errors=True)
                if not args.keep:
                    shutil.rmtree(at_n["dir"], ignore_errors=True)
            with PostgresServer() as server:
                # Before the rows are read into this process: a child's peak RSS counts the
                # pages of the parent it was forked from.
                if not only_orders:
                    postgres = _postgres_e2e(server, sample, n, common, keep=args.keep)
                known = {}
                if at_n is not None:
                    known = {("sqlite", "id"): at_n, ("postgres", "id"): postgres[pg_workers]}
                _log(f"row orders: {', '.join(orders)} on SQLite and PostgreSQL, "
                     f"{args.rounds} round(s)" + (f", {' and '.join(codes)}" if args.ab else ""))
                ordered = _orders(server, files, n, common, rounds=args.rounds, codes=codes,
                                  known=known, keep=args.keep, pg_workers=pg_workers)
                if not only_orders:
                    meta["limit_rows"] = min(n, LIMIT_MAX_ROWS)
                    _log(f"limit: bulk load of {meta['limit_rows']:,} rows")
                    rows = data.read_rows(sample, meta["limit_rows"] if n > LIMIT_MAX_ROWS
                                          else None)
                    limits = [limit.load(rows, runs / "limit.db", defer_indexes=defer)
                              for defer in (False, True)]
                    lim = max(limits, key=lambda r: r["rows_per_s"])
                    lim["indexes_kept_rows_per_s"] = limits[0]["rows_per_s"]
                    lim["indexes_deferred_rows_per_s"] = limits[1]["rows_per_s"]
                    _log(f"  {lim['rows_per_s']:,.0f} rows/s; PostgreSQL's limit (COPY)")
                    postgres["limit"] = pg.limit(rows, server.new_database())
                    _log(f"  {postgres['limit']['rows_per_s']:,.0f} rows/s")
                    del rows
            if not only_orders:
                _log(f"baseline: {k:,} rows the seed's way")
                base = baseline.run(data.read_rows(sample, k), bootstrap=kafka.bootstrap,
                                    redis_url=redis.url, database=runs / "baseline.db",
                                    topic=f"baseline-{uuid.uuid4().hex[:8]}")
                _log(f"  {base['rows_per_s']:,.1f} rows/s")
    finally:
        kafka.remove()  # its log holds every row published: hundreds of MB at 1M rows
    if not args.keep:
        shutil.rmtree(runs, ignore_errors=True)
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if only_orders:
        f = results.order_figures(ordered, n, meta)
    else:
        f = results.figures(at_n, at_2n, base, lim, meta, postgres, ordered)
    print(results.table(f))
    latest, dated = results.write(f, args.out)
    print(f"\nwritten: {latest.relative_to(REPO) if latest.is_relative_to(REPO) else latest}, "
          f"{dated.name}")
    return 0
