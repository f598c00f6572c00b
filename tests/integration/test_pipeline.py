"""End to end on the real services: FTP/HTTP server → fetcher → Kafka → worker → database."""

from __future__ import annotations

import csv
import gzip
import re
import subprocess
import sys

import pytest
import redis
from expected import actual_tables, expected_tables, snapshot
from molstream.config import Mode
from molstream.contract import COLUMN_NAMES
from molstream.db import make_engine
from molstream.fetcher import IngestFailed
from molstream.sample import LEGACY_COLUMNS, generate
from sqlalchemy import text

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.ftp]


@pytest.fixture
def sample_dir(tmp_path):
    d = tmp_path / "srv"
    d.mkdir()
    generate(d / "activities.csv.gz", 20_000, seed=7)
    generate(d / "activities.csv", 3_000, seed=8)
    return d


def _report_csv(path) -> dict[tuple[str, str], str]:
    with open(path, newline="") as f:
        return {(r["section"], r["name"]): r["value"] for r in csv.DictReader(f)}


def test_ftp_gzip_to_sqlite_matches_the_input(make_pipeline, ftp_server, sample_dir, redis_url):
    ftp = ftp_server(sample_dir)
    p = make_pipeline()
    report = p.ingest(ftp.url("activities.csv.gz"), "run-1")
    expected = expected_tables(sample_dir / "activities.csv.gz")
    assert actual_tables(make_engine(p.settings.database_url)) == expected
    assert report["rows_written"] == report["rows_published"] == len(expected["activity"]) == 20_000
    assert report["rows_rejected"] == 0
    assert report["tables"]["molecule"] == len(expected["molecule"])
    assert report["table_totals"]["activity"] == 20_000
    csv_report = _report_csv(report_path := p.settings.reports_dir / "run-1.csv")
    assert csv_report[("summary", "rows_written")] == "20000"
    assert csv_report[("rows_written", "target")] == str(len(expected["target"]))
    assert report_path.exists()
    events = [e for e in p.read_topic(p.settings.topics.events) if e["ingest_id"] == "run-1"]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "started" and kinds[-1] == "completed" and "published" in kinds
    assert events[-1]["tables"] == report["tables"]
    # Redis now holds the dimension ids, namespaced by the database's instance id.
    keys = redis.Redis.from_url(redis_url).keys("molstream:*:activity_type")
    assert keys


@pytest.mark.postgres
def test_http_to_postgresql_matches_the_input(make_pipeline, http_server, sample_dir,
                                              postgres_url):
    http = http_server(sample_dir)
    p = make_pipeline(database_url=postgres_url)
    report = p.ingest(http.url("activities.csv"), "pg-1")
    expected = expected_tables(sample_dir / "activities.csv")
    engine = make_engine(postgres_url)
    try:
        assert actual_tables(engine) == expected
    finally:
        engine.dispose()
    assert report["rows_written"] == 3_000


def test_ftps_with_credentials_from_the_environment(make_pipeline, ftp_server, sample_dir,
                                                    tls_ca_file):
    ftp = ftp_server(sample_dir, tls=True)
    p = make_pipeline(source_ca_file=tls_ca_file)
    from molstream.fetch import Credentials
    url = f"ftps://127.0.0.1:{ftp.port}/activities.csv"
    p.fetch(url, "tls-1", credentials=Credentials(ftp.user, ftp.password))
    assert p.work("tls-1")[-1]["rows_written"] == 3_000


def test_same_file_twice_insert_only_is_unchanged_and_upsert_updates_in_place(
        make_pipeline, ftp_server, sample_dir, tmp_path):
    ftp = ftp_server(sample_dir)
    p = make_pipeline()
    engine = make_engine(p.settings.database_url)
    p.ingest(ftp.url("activities.csv"), "a", mode=Mode.INSERT_ONLY)
    before = snapshot(engine)
    second = p.ingest(ftp.url("activities.csv"), "b", mode=Mode.INSERT_ONLY)
    assert snapshot(engine) == before
    assert second["rows_written"] == 0 and second["rows_published"] == 3_000

    # A new edition of the file: every 10th activity value changed.
    src = sample_dir / "activities.csv"
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    for i, row in enumerate(rows):
        if i % 10 == 0:
            row["activity_value"] = "123.25"
    edited = sample_dir / "edited.csv"
    with open(edited, "w", newline="") as f:
        out = csv.DictWriter(f, COLUMN_NAMES)
        out.writeheader()
        out.writerows(rows)
    third = p.ingest(ftp.url("edited.csv"), "c", mode=Mode.UPSERT)
    assert third["tables"]["activity"] == 300
    after = snapshot(engine)
    assert len(after["activity"]) == len(before["activity"])  # updated in place, not duplicated
    changed = [(b, a) for b, a in zip(before["activity"], after["activity"], strict=True)
               if b != a]
    assert len(changed) == 300
    with engine.connect() as conn:
        cols = list(conn.execute(text("SELECT * FROM activity")).keys())
    lm, created = cols.index("last_modified_on"), cols.index("created_on")
    assert all(a[lm] > b[lm] and a[created] == b[created] for b, a in changed)
    assert actual_tables(engine) == expected_tables(edited)


def test_malformed_rows_are_rejected_and_good_rows_land(make_pipeline, ftp_server, tmp_path):
    src = tmp_path / "srv"
    src.mkdir()
    header = ",".join(LEGACY_COLUMNS)
    good = "{},5,NAME,1,C,,9,T,Homo sapiens,Ki,nM,1.5,="
    lines = [header, good.format(1), "2,5,NAME,1,C,,9,T", good.format("x3"),
             good.format(4).replace("1.5", "NaN"), good.format(5), good.format(1),
             good.format(6) + ",extra", good.format(7)]
    (src / "bad.csv").write_text("\n".join(lines) + "\n")
    ftp = ftp_server(src)
    p = make_pipeline()
    report = p.ingest(ftp.url("bad.csv"), "bad")
    assert report["rows_written"] == 3 and report["rows_rejected"] == 5
    rejected = {r["line"]: r["reason"] for r in p.read_topic(p.settings.topics.rejected)}
    assert rejected == {
        3: "expected 13 fields, found 8",
        4: "activity_id is not a whole number",
        5: "activity_value is not a finite number",
        7: "duplicate activity_id 1 (first seen on line 2)",
        8: "expected 13 fields, found 14",
    }
    engine = make_engine(p.settings.database_url)
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT id FROM activity ORDER BY id"))]
    assert ids == [1, 5, 7]


def test_missing_column_fails_at_once_and_writes_nothing(make_pipeline, ftp_server, tmp_path):
    src = tmp_path / "srv"
    src.mkdir()
    cols = [c for c in COLUMN_NAMES if c != "target_id"]
    (src / "nocol.csv").write_text(",".join(cols) + "\n" + ",".join("1" for _ in cols) + "\n")
    ftp = ftp_server(src)
    p = make_pipeline()
    with pytest.raises(IngestFailed, match="required column 'target_id' is missing"):
        p.fetch(ftp.url("nocol.csv"), "nocol")
    events = p.read_topic(p.settings.topics.events)
    assert events[-1]["type"] == "failed" and "target_id" in events[-1]["reason"]
    assert p.read_topic(p.settings.topics.rows) == []


def _fetch_cli(url: str, env_extra: dict, p) -> subprocess.CompletedProcess:
    env = {"MOLSTREAM_KAFKA_BOOTSTRAP": p.settings.kafka_bootstrap,
           "MOLSTREAM_TOPIC_PREFIX": p.settings.topics.prefix,
           "MOLSTREAM_WORK_DIR": str(p.settings.work_dir), "MOLSTREAM_RETRIES": "1",
           "MOLSTREAM_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
           "MOLSTREAM_ALLOW_INSECURE_CREDENTIALS": "true",
           "PATH": "/usr/bin:/bin", **env_extra}
    return subprocess.run([sys.executable, "-m", "molstream", "fetch", "--url", url,
                           "--ingest-id", "cli", "--no-progress"],
                          capture_output=True, text=True, timeout=120, env=env)


def test_fetch_errors_are_clear_and_exit_non_zero(make_pipeline, ftp_server, sample_dir):
    ftp = ftp_server(sample_dir)
    p = make_pipeline()
    # Nothing listens on port 1.
    unreachable = _fetch_cli("ftp://127.0.0.1:1/activities.csv", {}, p)
    assert unreachable.returncode != 0
    assert "cannot connect to 127.0.0.1:1" in unreachable.stderr
    wrong = _fetch_cli(f"ftp://127.0.0.1:{ftp.port}/activities.csv",
                       {"MOLSTREAM_SOURCE_USERNAME": ftp.user,
                        "MOLSTREAM_SOURCE_PASSWORD": "not-the-password"}, p)
    assert wrong.returncode != 0 and "login refused" in wrong.stderr
    assert "not-the-password" not in wrong.stderr + wrong.stdout
    missing = _fetch_cli(f"ftp://127.0.0.1:{ftp.port}/nope.csv",
                         {"MOLSTREAM_SOURCE_USERNAME": ftp.user,
                          "MOLSTREAM_SOURCE_PASSWORD": ftp.password}, p)
    assert missing.returncode != 0 and "no such file" in missing.stderr
    scheme = _fetch_cli("gopher://127.0.0.1/x.csv", {}, p)
    assert scheme.returncode != 0 and "unsupported URL scheme 'gopher'" in scheme.stderr
    no_kafka = _fetch_cli(f"ftp://127.0.0.1:{ftp.port}/activities.csv",
                          {"MOLSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:1"}, p)
    assert no_kafka.returncode == 2, no_kafka.stderr
    assert "error: publish failed: cannot reach Kafka at 127.0.0.1:1" in no_kafka.stderr
    assert "Traceback" not in no_kafka.stderr


def test_worker_start_errors_are_clear_and_hide_the_password(make_pipeline):
    p = make_pipeline()
    env = {"MOLSTREAM_KAFKA_BOOTSTRAP": p.settings.kafka_bootstrap, "MOLSTREAM_REDIS_URL": "",
           "PATH": "/usr/bin:/bin"}

    def worker(url: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "molstream", "worker", "--idle-timeout", "1",
                               "--database-url", url], capture_output=True, text=True,
                              timeout=120, env=env)

    refused = worker("postgresql://molstream:s3cret-pw@127.0.0.1:1/molstream")
    assert refused.returncode == 2
    assert ("error: cannot open the database postgresql://molstream:***@127.0.0.1:1/molstream: "
            "connection failed") in refused.stderr
    garbled = worker("s3cret-pw")
    assert garbled.returncode == 2 and "is not one SQLAlchemy reads" in garbled.stderr
    for out in (refused, garbled):
        assert "s3cret-pw" not in out.stderr + out.stdout and "Traceback" not in out.stderr


def test_worker_goes_on_without_redis(make_pipeline, ftp_server, sample_dir):
    ftp = ftp_server(sample_dir)
    p = make_pipeline(redis=False)
    report = p.ingest(ftp.url("activities.csv"), "noredis")
    assert report["rows_written"] == 3_000


def test_gzip_bomb_is_refused(make_pipeline, ftp_server, tmp_path):
    src = tmp_path / "srv"
    src.mkdir()
    with gzip.open(src / "bomb.csv.gz", "wb") as f:
        f.write(b"activity_id," + b"0" * 5_000_000)
    ftp = ftp_server(src)
    p = make_pipeline(max_decompressed_bytes=1_000_000)
    with pytest.raises(IngestFailed, match="gzip bomb"):
        p.fetch(ftp.url("bomb.csv.gz"), "bomb")


@pytest.mark.postgres
def test_two_workers_share_an_ingest_on_postgresql(make_pipeline, ftp_server, tmp_path,
                                                   postgres_url):
    """PostgreSQL is how a user outgrows one worker: two worker processes, four partitions."""
    src = tmp_path / "srv2"
    src.mkdir()
    generate(src / "big.csv", 30_000, seed=11)
    ftp = ftp_server(src)
    p = make_pipeline(database_url=postgres_url, rows_partitions=4)
    p.fetch(ftp.url("big.csv"), "two")
    env = {"MOLSTREAM_KAFKA_BOOTSTRAP": p.settings.kafka_bootstrap,
           "MOLSTREAM_TOPIC_PREFIX": p.settings.topics.prefix,
           "MOLSTREAM_WORKER_GROUP": p.settings.worker_group,
           "MOLSTREAM_DATABASE_URL": postgres_url, "MOLSTREAM_REDIS_URL": "",
           "MOLSTREAM_REPORTS_DIR": str(tmp_path / "reports"), "PATH": "/usr/bin:/bin"}
    workers = [subprocess.Popen([sys.executable, "-m", "molstream", "worker", "--until-complete",
                                 "two", "--idle-timeout", "60", "--no-progress"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    engine = make_engine(postgres_url)
    try:
        assert actual_tables(engine) == expected_tables(src / "big.csv")
        with engine.connect() as conn:
            per_worker = conn.execute(text("SELECT count(*) FROM applied_batch")).scalar_one()
        assert per_worker == 30  # every batch applied exactly once between them
    finally:
        engine.dispose()
    # Exactly one of them announced the completion.
    assert sum("completed" in err for _, err in outputs) == 1


def test_too_little_scratch_space_fails_before_anything_is_downloaded(make_pipeline, ftp_server,
                                                                      sample_dir):
    """The space the download and its conversion need is checked once the server has said
    the file's size: against the disk, and against the limit the file system does not show
    (an emptyDir's sizeLimit, handed over as MOLSTREAM_SCRATCH_LIMIT)."""
    ftp = ftp_server(sample_dir)
    p = make_pipeline(scratch_limit="64Mi")
    with pytest.raises(IngestFailed, match="not enough scratch space for the download and its "
                                           "conversion: it needs"):
        p.fetch(ftp.url("activities.csv.gz"), "tight")
    assert not [f for f in p.settings.work_dir.rglob("*") if f.is_file()]
    events = p.read_topic(p.settings.topics.events)
    assert events[-1]["type"] == "failed" and "fetcher.scratchSize" in events[-1]["reason"]
    assert p.read_topic(p.settings.topics.rows) == []


@pytest.mark.slow
def test_make_local_ingests_a_file_the_user_names(tmp_path):
    """`make local URL=…`: the same local pipeline (its own Kafka and Redis) on the user's
    file, and the same report."""
    generate(tmp_path / "mine.csv", 2_000, seed=3)
    run = subprocess.run(
        [sys.executable, "-m", "molstream_dev.local", "--url", f"file://{tmp_path}/mine.csv",
         "--dir", str(tmp_path / "local")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "and the FTP server" not in run.stdout
    assert "2,000 rows end to end" in run.stdout
    assert re.search(r"^activity\s+2,000\s+2,000$", run.stdout, re.M), run.stdout
    assert list((tmp_path / "local" / "reports").glob("local-*.csv"))
