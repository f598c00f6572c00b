"""A single-node Apache Kafka broker (KRaft: broker and controller in one JVM) on loopback,
run with the machine's Java from the jars that tools/provision/services.sh fetched.

    with KafkaServer() as kafka:
        kafka.bootstrap        # "127.0.0.1:PORT"
        kafka.stop(); kafka.start()   # same port, same data: clients reconnect
"""

from __future__ import annotations

import base64
import fcntl
import functools
import hashlib
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from ._process import CACHE, PROVISION, REPO, Managed, ServiceError, free_port, require
from ._process import run_dir as _run_dir  # noqa: F401 - older callers import it from here

POM = REPO / "tools/provision/kafka/pom.xml"


def kafka_version() -> str:
    pom = POM.read_text()
    return pom.split("<kafka.version>")[1].split("</kafka.version>")[0].strip()


def libs_dir() -> Path:
    """The jars; `.complete` is written by the provision script once the copy succeeded."""
    version = kafka_version()
    libs = CACHE / "kafka" / version / "libs"
    if not (libs / ".complete").exists():
        raise ServiceError(f"Kafka {version} jars are missing from {libs}: "
                           f"run `sudo bash {PROVISION}` first")
    return libs


@functools.cache
def _java_id() -> str:
    """The JVM build, which a class data archive belongs to."""
    out = subprocess.run([require("java"), "-version"], capture_output=True, text=True).stderr
    return hashlib.sha1(out.encode()).hexdigest()[:10]


_LOG4J = """\
log4j.rootLogger=INFO, out
log4j.appender.out=org.apache.log4j.ConsoleAppender
log4j.appender.out.layout=org.apache.log4j.PatternLayout
log4j.appender.out.layout.ConversionPattern=[%d] %p %m (%c)%n
# Quiet by default; startup, shutdown and errors still show.
log4j.logger.kafka=WARN
log4j.logger.org.apache.kafka=WARN
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
"""


def new_cluster_id() -> str:
    """A random cluster id as Kafka writes one (Uuid.randomUuid): url-safe base64 of 16
    bytes, never starting with '-', which the storage tool's argument parser would read as an
    option (1 draw in 64)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaServer(Managed):
    name = "kafka"
    start_timeout_s = 90.0

    def __init__(self, *, port: int | None = None, controller_port: int | None = None,
                 data_dir: Path | None = None, heap: str = "768m",
                 extra_config: dict[str, str] | None = None) -> None:
        self._classpath = f"{libs_dir()}/*"  # fail early, with the provision hint
        super().__init__(data_dir)
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.heap = heap
        self.extra_config = dict(extra_config or {})
        self._cds_archive = libs_dir().parent / f"broker-{_java_id()}.jsa"
        self._cds_dump = self.dir / "classes.jsa.tmp"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def ports(self) -> list[int]:
        return [self.port, self.controller_port]

    def config(self) -> dict[str, str]:
        mib16 = str(16 * 1024 * 1024)
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
                         f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.dir / "data"),
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",  # the default 50 costs seconds at first use
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # After a SIGKILL the restarted controller waits for the dead broker's session to
            # expire before it takes the new registration: 9 s by default.
            "broker.session.timeout.ms": "3000",
            "broker.heartbeat.interval.ms": "500",
            "message.max.bytes": mib16,
            "replica.fetch.max.bytes": mib16,
            **self.extra_config,
        }

    def prepare(self) -> None:
        props = self.dir / "server.properties"
        props.write_text("".join(f"{k}={v}\n" for k, v in self.config().items()))
        (self.dir / "log4j.properties").write_text(_LOG4J)
        data = self.dir / "data"
        if not (data / "meta.properties").exists():
            # What `kafka-storage format` writes does not depend on ports or paths: format once
            # per Kafka version and copy (saves a JVM start, ~2 s, per fresh broker).
            data.mkdir(parents=True, exist_ok=True)
            for f in self._formatted_template().iterdir():
                shutil.copy2(f, data / f.name)

    def _formatted_template(self) -> Path:
        template = libs_dir().parent / "formatted"
        if (template / "meta.properties").exists():
            return template
        with open(libs_dir().parent / ".format.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if (template / "meta.properties").exists():
                return template
            tmp = Path(tempfile.mkdtemp(prefix="formatting-", dir=template.parent))
            props = tmp / "server.properties"
            props.write_text("".join(f"{k}={v}\n" for k, v in
                                     {**self.config(), "log.dirs": str(tmp / "data")}.items()))
            cluster_id = new_cluster_id()
            done = subprocess.run(
                self._java("kafka.tools.StorageTool", "format", "-t", cluster_id,
                           "-c", str(props), cds=False),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if done.returncode != 0:
                shutil.rmtree(tmp, ignore_errors=True)
                raise ServiceError(f"kafka storage format failed:\n{done.stdout[-3000:]}")
            (tmp / "data").rename(template)
            shutil.rmtree(tmp, ignore_errors=True)
        return template

    def _java(self, main: str, *args: str, cds: bool = True) -> list[str]:
        return [require("java"), f"-Xmx{self.heap}", f"-Xms{self.heap}",
                "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
                *(self._cds_flags() if cds else []),
                f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
                "-cp", self._classpath, main, *args]

    def _cds_flags(self) -> list[str]:
        """Class data sharing: the broker's loaded classes, archived at the first graceful
        stop and mapped by later JVMs (startup ~5-7 s → ~3 s on 2 cores). A JVM that does not
        match the archive ignores it."""
        if self._cds_archive.exists():
            return [f"-XX:SharedArchiveFile={self._cds_archive}", "-Xlog:cds=off",
                    "-Xlog:cds+dynamic=off"]
        return [f"-XX:ArchiveClassesAtExit={self._cds_dump}", "-Xlog:cds=off",
                "-Xlog:cds+dynamic=off"]

    def stop(self, *, timeout_s: float = 30) -> None:
        super().stop(timeout_s=timeout_s)
        if self._cds_dump.exists():  # written at exit; publish it whole, once
            if self._cds_archive.exists():
                self._cds_dump.unlink(missing_ok=True)
            else:
                self._cds_dump.replace(self._cds_archive)

    def kill(self) -> None:
        super().kill()
        self._cds_dump.unlink(missing_ok=True)

    def command(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.dir / "server.properties"))

    def admin_config(self) -> dict:
        """kafka-python client settings of a client allowed everything."""
        return {"bootstrap_servers": self.bootstrap}

    def ready(self) -> None:
        """The port opens before the broker serves metadata; wait until a client can list
        topics, as the pipeline's first call would."""
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        deadline = time.monotonic() + 60
        while True:
            admin = None
            try:
                admin = KafkaAdminClient(**self.admin_config(), request_timeout_ms=5000,
                                         client_id="molstream-dev")
                admin.list_topics()
                return
            except KafkaError:
                if not self.running:
                    raise ServiceError("kafka exited", self.log) from None
                if time.monotonic() > deadline:
                    raise ServiceError("kafka did not answer metadata requests",
                                       self.log) from None
                time.sleep(0.2)
            finally:
                if admin is not None:
                    admin.close()
