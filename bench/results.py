"""The figures of one bench run: what they are computed from, the targets, the table, the files."""

from __future__ import annotations

import json
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

# The targets, for the default run (1,000,000 rows on the 2-core machine): issue 5's, with the
# ratio to the seed's design kept as a figure only (the baseline's own rate moves 139-354 r/s
# from run to run), and issue 12's for SQLite's share of its limit and for PostgreSQL.
TARGETS = {
    "e2e_rows_per_s": (">=", 50_000),
    "ratio_vs_limit": (">=", 0.50),
    "fetcher_peak_rss_mb": ("<", 400),
    "worker_peak_rss_mb": ("<", 400),
    "fetcher_rss_growth_pct": ("<", 15),
    "worker_rss_growth_pct": ("<", 15),
    "pg_e2e_rows_per_s": (">=", 60_000),
    "pg_ratio_vs_limit": (">=", 0.40),
    "pg_2w_vs_1w": (">=", 1.0),
    "pg_lock_wait_pct": ("<", 5),
    "pg_worker_peak_rss_mb": ("<", 400),
}
# Issue 20's targets, its table's rows: any row order within 1.25× of id order; PostgreSQL on
# the shuffled file at ≥ 45% of its COPY limit; each database's pipeline at ≥ 60% of its limit;
# no kafka-python event-loop warning.
ORDER_TARGETS = {
    "order_vs_id": ("<=", 1.25),
    "pg_shuffled_vs_limit": (">=", 0.45),
    "pipeline_vs_limit": (">=", 0.60),
    "kafka_loop_warnings": ("<=", 0),
}
STAGES = ("download", "read", "publish", "apply")
STAGE_LABELS = {"download": "download", "read": "read (CSV → HDF5)",
                "publish": "validate + publish", "apply": "apply (worker)"}


def _postgres(pg: dict) -> dict:
    if 2 not in pg:  # one worker only (not made by bench.run any more; old results)
        out = _postgres({**pg, 2: pg[1]})
        return {**out, **{k: None for k in out if "2w" in k or k in (
            "pg_lock_wait_s", "pg_lock_wait_s_per_worker", "pg_lock_wait_pct")}}
    one, two, lim = pg[1], pg[2], pg["limit"]
    waits = two["lock_wait_s"]
    apply_s = two["stage_seconds"]["apply"]
    return {
        "pg_e2e_rows_per_s": one["rows_per_s"],
        "pg_e2e_seconds": one["seconds"],
        "pg_e2e_2w_rows_per_s": two["rows_per_s"],
        "pg_e2e_2w_seconds": two["seconds"],
        "pg_2w_vs_1w": two["rows_per_s"] / one["rows_per_s"],
        "pg_limit_rows_per_s": lim["rows_per_s"],
        "pg_limit_seconds": lim["seconds"],
        "pg_ratio_vs_limit": one["rows_per_s"] / lim["rows_per_s"],
        # The 2-worker run's: the most any one worker waited, and each one's.
        "pg_lock_wait_s": max(waits.values(), default=0.0),
        "pg_lock_wait_s_per_worker": sorted(waits.values()),
        "pg_lock_wait_s_1w": max(one["lock_wait_s"].values(), default=0.0),
        "pg_lock_wait_pct": 100.0 * max(waits.values(), default=0.0) / apply_s,
        "pg_apply_seconds": one["stage_seconds"]["apply"],
        "pg_apply_2w_seconds": apply_s,
        "pg_worker_peak_rss_mb": max(one["worker_peak_rss_mb"], two["worker_peak_rss_mb"]),
        "pg_worker_peak_rss_mb_1w": one["worker_peak_rss_mb"],
        "pg_worker_peak_rss_mb_2w": two["worker_peak_rss_mb"],
        "pg_fetcher_peak_rss_mb": max(one["fetcher_peak_rss_mb"], two["fetcher_peak_rss_mb"]),
        "pg_worker_cpu_seconds": one["worker_cpu_seconds"],
        # the id-order runs' (with --full the row orders count the 2-worker one only)
        "pg_loop_warnings_1w": one.get("loop_warnings"),
        "pg_loop_warnings_2w": two.get("loop_warnings"),
        "pg_member_timeouts": [one.get("member_timeouts"), two.get("member_timeouts")],
    }


def _median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def order_figures(ordered: dict, rows: int, meta: dict, limits: dict | None = None) -> dict:
    """The row orders' figures (bench.run._orders), named after issue 20's table: per
    database, the median seconds of each order and their ratio to id order (`order_vs_id`);
    with --ab, the same for the other version of molstream (`ab`)."""
    def per_code(runs: dict) -> dict:
        out: dict = {}
        for database, by_order in runs.items():
            seconds = {o: _median([r["seconds"] for r in rs]) for o, rs in by_order.items()}
            out[database] = {
                "seconds": seconds,
                "runs_seconds": {o: [round(r["seconds"], 2) for r in rs]
                                 for o, rs in by_order.items()},
                "apply_seconds": {o: _median([r["apply_seconds"] for r in rs])
                                  for o, rs in by_order.items()},
                "order_vs_id": {o: s / seconds["id"] for o, s in seconds.items()
                                if o != "id" and "id" in seconds},
                "fetcher_peak_rss_mb": max(r["fetcher_peak_rss_mb"] for rs in by_order.values()
                                           for r in rs),
                "worker_peak_rss_mb": max(r["worker_peak_rss_mb"] for rs in by_order.values()
                                          for r in rs),
                "kafka_loop_warnings": sum(r["loop_warnings"] for rs in by_order.values()
                                           for r in rs),
                "rebalances": sum(r.get("rebalances", 0) for rs in by_order.values()
                                  for r in rs),
                "member_timeouts": sum(r.get("member_timeouts", 0) for rs in by_order.values()
                                       for r in rs),
            }
        return out

    this = per_code(ordered["this"])
    f = {"rows": rows, "orders": this, "meta": meta}
    for database in ("sqlite", "postgres"):
        for order, ratio in this[database]["order_vs_id"].items():
            f[f"{order}_vs_id_{database}"] = ratio
        f[f"kafka_loop_warnings_{database}"] = this[database]["kafka_loop_warnings"]
        f[f"rebalances_{database}"] = this[database]["rebalances"]
        f[f"member_timeouts_{database}"] = this[database]["member_timeouts"]
    if "other" in ordered:
        other = per_code(ordered["other"])
        f["ab"] = {"other": other, "this_vs_other": {
            database: {o: this[database]["seconds"][o] / s
                       for o, s in other[database]["seconds"].items()}
            for database in other}}
    limits = limits or {}
    pg_limit = limits.get("postgres")
    shuffled_pg = this["postgres"]["seconds"].get("shuffled")
    if pg_limit and shuffled_pg:
        f["pg_shuffled_vs_limit"] = rows / shuffled_pg / pg_limit
    return f


def figures(e2e: dict, e2e_2n: dict | None, baseline: dict, limit: dict, meta: dict,
            pg: dict, ordered: dict | None = None) -> dict:
    rows = e2e["rows"]
    e2e_2n = e2e_2n or {k: None for k in ("rows", "rows_per_s", "fetcher_peak_rss_mb",
                                           "worker_peak_rss_mb")}
    out = {
        "rows": rows,
        "e2e_rows_per_s": e2e["rows_per_s"],
        "e2e_seconds": e2e["seconds"],
        "baseline_rows": baseline["rows"],
        "baseline_rows_per_s": baseline["rows_per_s"],
        "baseline_ms_per_row": baseline["ms_per_row"],
        "limit_rows_per_s": limit["rows_per_s"],
        "limit_seconds": limit["seconds"],
        "limit_indexes_kept_rows_per_s": limit["indexes_kept_rows_per_s"],
        "limit_indexes_deferred_rows_per_s": limit["indexes_deferred_rows_per_s"],
        "ratio_vs_baseline": e2e["rows_per_s"] / baseline["rows_per_s"],
        "ratio_vs_limit": e2e["rows_per_s"] / limit["rows_per_s"],
        "fetcher_peak_rss_mb": e2e["fetcher_peak_rss_mb"],
        "worker_peak_rss_mb": e2e["worker_peak_rss_mb"],
        "rows_2n": e2e_2n["rows"],
        "e2e_2n_rows_per_s": e2e_2n["rows_per_s"],
        "fetcher_peak_rss_mb_2n": e2e_2n["fetcher_peak_rss_mb"],
        "worker_peak_rss_mb_2n": e2e_2n["worker_peak_rss_mb"],
        "fetcher_rss_growth_pct": _growth(e2e, e2e_2n, "fetcher_peak_rss_mb"),  # None: no 2N
        "worker_rss_growth_pct": _growth(e2e, e2e_2n, "worker_peak_rss_mb"),
        "batches": e2e["batches"],
        "fetcher_cpu_seconds": e2e["fetcher_cpu_seconds"],
        "worker_cpu_seconds": e2e["worker_cpu_seconds"],
        "timeline_s": e2e["timeline_s"],
        **_postgres(pg),
    }
    for stage in STAGES:
        out[f"{stage}_rows_per_s"] = e2e["stage_rows_per_s"][stage]
        out[f"{stage}_seconds"] = e2e["stage_seconds"][stage]
    if ordered:
        o = order_figures(ordered, rows, meta, {"postgres": out["pg_limit_rows_per_s"]})
        out.update({k: v for k, v in o.items() if k not in ("rows", "meta")})
    # issue 20's table, by its rows' names
    out["e2e_seconds_sqlite"] = out["e2e_seconds"]
    out["e2e_seconds_postgres_1w"] = out["pg_e2e_seconds"]
    out["e2e_seconds_postgres_2w"] = out["pg_e2e_2w_seconds"]
    out["pipeline_vs_limit_sqlite"] = out["ratio_vs_limit"]
    out["pipeline_vs_limit_postgres"] = out["pg_ratio_vs_limit"]
    out["targets"] = {key: {"target": _target_text(key, op, value),
                            "met": _met(out[key], op, value)}
                      for key, (op, value) in TARGETS.items() if out.get(key) is not None}
    out["meta"] = meta
    return out


def _target_text(key: str, op: str, value: float) -> str:
    sign = "≥" if op == ">=" else "<"
    if key.endswith("ratio_vs_limit"):
        return f"{sign} {100 * value:g} %"
    if key in ("ratio_vs_baseline", "pg_2w_vs_1w"):
        return f"{sign} {value:g} ×"
    if key.endswith("_pct"):
        return f"{sign} {value:g} %"
    if key.endswith("_mb"):
        return f"{sign} {value:g} MB"
    return f"{sign} {value:,g} r/s"


def _limit_rows(f: dict) -> str:
    """Said when the limits were measured on fewer rows than the pipeline (bench.run)."""
    n = f["meta"].get("limit_rows")
    return f" on the first {n:,} rows" if n and n < f["rows"] else ""


def _growth(a: dict, b: dict, key: str) -> float | None:
    return None if b[key] is None else 100.0 * (b[key] - a[key]) / a[key]


def _met(value: float, op: str, target: float) -> bool:
    return {">=": value >= target, "<=": value <= target}.get(op, value < target)


def order_table(f: dict) -> str:
    """The row orders: seconds end to end per database and order, ratio to id order; the
    figures of issue 20's table that they give."""
    orders = f["orders"]
    known = ("id", "target", "shuffled")  # bench.data.ORDERS (a JSON file sorts its keys)
    names = sorted(next(iter(orders.values()))["seconds"],
                   key=lambda o: known.index(o) if o in known else len(known))
    lines = [f"row orders, {f['rows']:,} rows, end to end (median of "
             f"{f['meta'].get('rounds', 1)}; × id order)",
             f"{'':<34}" + "".join(f"{o:>11}{'':7}" for o in names)]

    def cells(d: dict) -> str:
        return "".join(f"{d['seconds'][o]:>9.1f} s" + (f" {d['order_vs_id'][o]:>5.2f}×"
                                                        if o in d["order_vs_id"] else " " * 7)
                       for o in names)

    w = f["meta"].get("pg_order_workers", 1)
    pg_workers = "1 worker" if w == 1 else f"{w} workers"
    pg_label = f"PostgreSQL, {pg_workers}"
    for database, label in (("sqlite", "SQLite"), ("postgres", pg_label)):
        d = orders[database]
        lines.append(f"{label:<34}" + cells(d))
        lines.append(f"{'  apply (worker)':<34}" + "".join(
            f"{d['apply_seconds'][o]:>9.1f} s{'':7}" for o in names).rstrip())
    if ab := f.get("ab"):
        lines.append(f"with {f['meta'].get('ab')} (alternating run by run):")
        for database, label in (("sqlite", "SQLite"), ("postgres", pg_label)):
            lines.append(f"{label:<34}" + cells(ab["other"][database]))
            lines.append(f"{'  this / that':<34}" + "".join(
                f"{ab['this_vs_other'][database][o]:>9.2f} ×{'':7}" for o in names).rstrip())
    op, target = ORDER_TARGETS["order_vs_id"]
    for database, label, note in (("sqlite", "SQLite", ""),
                                  ("postgres", "PostgreSQL", pg_workers)):
        worst = max(orders[database]["order_vs_id"].values(), default=None)
        if worst is not None:
            lines.append(f"{'other orders / id order, ' + label:<34}{worst:>14.2f} ×  "
                         f"{'≤ ' + format(target, 'g') + ' ×':>12}  "
                         f"{'ok' if _met(worst, op, target) else 'MISSED'}   (the slower"
                         + (f"; {note})" if note else ")"))
    if "pg_shuffled_vs_limit" in f:
        op, target = ORDER_TARGETS["pg_shuffled_vs_limit"]
        v = f["pg_shuffled_vs_limit"]
        lines.append(f"{'PostgreSQL shuffled / its limit':<34}{100 * v:>14.1f} %  "
                     f"{'≥ ' + format(100 * target, 'g') + ' %':>12}  "
                     f"{'ok' if _met(v, op, target) else 'MISSED'}   "
                     f"({pg_workers})")
    for database, label in (("sqlite", "SQLite"), ("postgres", pg_label)):
        d = orders[database]
        lines.append(f"{label + ' peak RSS (orders runs)':<34}{'':>16}  {'':>12}   (fetcher "
                     f"{d['fetcher_peak_rss_mb']:,.0f} MB, worker {d['worker_peak_rss_mb']:,.0f}"
                     f" MB; kafka-python loop warnings {d['kafka_loop_warnings']}, "
                     f"rebalances {d.get('rebalances', 0)}, members dropped for silence "
                     f"{d.get('member_timeouts', 0)})")
    return "\n".join(lines)


def table(f: dict) -> str:
    """The table; a line whose figure this run did not measure (--full: no 2N run) is left
    out; the row orders follow (`order_table`: alone with --only)."""
    if "e2e_rows_per_s" not in f:
        return order_table(f)
    n, n2 = f["rows"], f["rows_2n"]

    def mark(key: str) -> str:
        t = f["targets"][key]
        return f"{t['target']:>12}  {'ok' if t['met'] else 'MISSED'}"

    def at_2n(key: str) -> str:
        return "" if f.get(key) is None else f"   ({f[key]:,.0f} MB at {n2:,})"

    lines = [
        lambda: f"molstream bench: {n:,} rows"
            + (f" (memory growth vs {n2:,})" if n2 else " (no 2N run)") + ", "
            f"{f['meta']['cpus']} CPUs, load {f['meta']['load_before']:.2f} before the run",
        lambda: f"{'figure':<34}{'value':>16}  {'target':>12}",
        lambda: f"{'end to end (FTP→SQLite)':<34}{f['e2e_rows_per_s']:>11,.0f} r/s  "
            f"{mark('e2e_rows_per_s')}   ({f['e2e_seconds']:.1f} s)",
    ]
    if tsv := f["meta"].get("tsv_zstd"):
        lines.append(lambda: f"{'  the same rows as TSV, zstd':<34}"
                     f"{tsv['rows_per_s']:>11,.0f} r/s  {'':>12}   ({tsv['seconds']:.1f} s)")
    for stage in STAGES:
        rate = f[f"{stage}_rows_per_s"]
        lines.append(lambda rate=rate, stage=stage: f"{'  ' + STAGE_LABELS[stage]:<34}"
                     f"{rate:>11,.0f} r/s  {'':>12}   ({f[stage + '_seconds']:.2f} s)")
    lines += [
        lambda: f"{'baseline (seed design)':<34}{f['baseline_rows_per_s']:>11,.1f} r/s  "
            f"{'':>12}   ({f['baseline_rows']:,} rows, {f['baseline_ms_per_row']:.2f} ms/row)",
        lambda: f"{'limit (bulk load, no Kafka)':<34}{f['limit_rows_per_s']:>11,.0f} r/s  "
            f"{'':>12}   ({f['limit_seconds']:.1f} s{_limit_rows(f)}; indexes kept "
            f"{f['limit_indexes_kept_rows_per_s']:,.0f},"
            f" rebuilt after {f['limit_indexes_deferred_rows_per_s']:,.0f} r/s)",
        lambda: f"{'pipeline / baseline':<34}{f['ratio_vs_baseline']:>14,.0f} ×  "
            f"{'(a figure)':>12}",
        lambda: f"{'pipeline / limit':<34}{100 * f['ratio_vs_limit']:>14,.1f} %  "
            f"{mark('ratio_vs_limit')}",
        lambda: f"{'fetcher peak RSS':<34}{f['fetcher_peak_rss_mb']:>13,.0f} MB  "
            f"{mark('fetcher_peak_rss_mb')}{at_2n('fetcher_peak_rss_mb_2n')}",
        lambda: f"{'worker peak RSS':<34}{f['worker_peak_rss_mb']:>13,.0f} MB  "
            f"{mark('worker_peak_rss_mb')}{at_2n('worker_peak_rss_mb_2n')}",
        lambda: f"{'fetcher RSS growth N→2N':<34}{f['fetcher_rss_growth_pct']:>14,.1f} %  "
            f"{mark('fetcher_rss_growth_pct')}",
        lambda: f"{'worker RSS growth N→2N':<34}{f['worker_rss_growth_pct']:>14,.1f} %  "
            f"{mark('worker_rss_growth_pct')}",
        lambda: f"{'end to end at 2N':<34}{f['e2e_2n_rows_per_s']:>11,.0f} r/s",
        lambda: f"{'PostgreSQL end to end, 1 worker':<34}{f['pg_e2e_rows_per_s']:>11,.0f} r/s  "
            f"{mark('pg_e2e_rows_per_s')}   ({f['pg_e2e_seconds']:.1f} s; apply "
            f"{f['pg_apply_seconds']:.1f} s)",
        lambda: f"{'PostgreSQL end to end, 2 workers':<34}{f['pg_e2e_2w_rows_per_s']:>11,.0f} r/s  "
            f"{'':>12}   ({f['pg_e2e_2w_seconds']:.1f} s, 4 partitions; apply "
            f"{f['pg_apply_2w_seconds']:.1f} s)",
        lambda: f"{'  2 workers / 1':<34}{f['pg_2w_vs_1w']:>14,.2f} ×  {mark('pg_2w_vs_1w')}",
        lambda: f"{'PostgreSQL limit (COPY, no Kafka)':<34}{f['pg_limit_rows_per_s']:>11,.0f} r/s  "
            f"{'':>12}   ({f['pg_limit_seconds']:.1f} s{_limit_rows(f)})",
        lambda: f"{'PostgreSQL pipeline / limit':<34}{100 * f['pg_ratio_vs_limit']:>14,.1f} %  "
            f"{mark('pg_ratio_vs_limit')}",
        lambda: f"{'PostgreSQL lock wait, 2 workers':<34}{f['pg_lock_wait_pct']:>14,.1f} %  "
            f"{mark('pg_lock_wait_pct')}   (of the apply phase; per worker "
            + ", ".join(f"{w:.1f}" for w in f["pg_lock_wait_s_per_worker"]) + " s)",
        lambda: f"{'PostgreSQL worker peak RSS':<34}{f['pg_worker_peak_rss_mb']:>13,.0f} MB  "
            f"{mark('pg_worker_peak_rss_mb')}   (1 worker {f['pg_worker_peak_rss_mb_1w']:,.0f}, "
            f"2 workers {f['pg_worker_peak_rss_mb_2w']:,.0f} MB; fetcher "
            f"{f['pg_fetcher_peak_rss_mb']:,.0f} MB; kafka-python loop warnings "
            f"{f.get('pg_loop_warnings_1w', '?')} and {f.get('pg_loop_warnings_2w', '?')}, "
            "members dropped for silence "
            + " and ".join(str(n) for n in f.get("pg_member_timeouts", ["?", "?"])) + ")",
        lambda: f"{'CPU time at N':<34}{'':>16}  {'':>12}   "
            f"(fetcher {f['fetcher_cpu_seconds']:.1f} s,"
            f" worker {f['worker_cpu_seconds']:.1f} s)",
        lambda: "timeline at N (s from start): " + ", ".join(
            f"{kind} {t:.1f}" for kind, t in sorted(f["timeline_s"].items(),
                                                    key=lambda x: x[1])),
    ]
    text = []
    for line in lines:
        try:
            text.append(line())
        except (KeyError, TypeError):  # not measured in this run
            continue
    if "orders" in f:
        text += ["", order_table(f)]
    return "\n".join(text)


def write(f: dict, out_dir: Path = RESULTS) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(f, indent=2, sort_keys=True) + "\n"
    latest = out_dir / "latest.json"
    dated = out_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{f['rows']}.json"
    dated.write_text(text)
    latest.write_text(text)
    return latest, dated
