"""A single-node Apache Kafka broker (KRaft: broker and controller in one JVM) on loopback,
run with the machine's Java from the jars that tools/provision/services.sh fetched."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from ._process import CACHE, REPO, Managed, ServiceError, free_port, require

PROVISION = "tools/provision/services.sh"


def _libs() -> Path:
    pom = (REPO / "tools/provision/kafka/pom.xml").read_text()
    version = pom.split("<kafka.version>")[1].split("</kafka.version>")[0]
    libs = CACHE / "kafka" / version / "libs"
    if not (libs / ".complete").exists():
        raise ServiceError(f"Kafka {version} jars are missing: run `bash {PROVISION}` first")
    return libs


class KafkaServer(Managed):
    name = "kafka"

    def __init__(self, *, port: int | None = None, data_dir: Path | None = None,
                 heap: str = "768m") -> None:
        super().__init__()
        self.port = port or free_port()
        self.controller_port = free_port()
        self.dir = data_dir or Path(tempfile.mkdtemp(prefix="kafka-", dir=_run_dir()))
        self.log = self.dir / "kafka.log"
        self.heap = heap
        self._classpath = f"{_libs()}/*"
        self._formatted = False

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _properties(self) -> Path:
        props = self.dir / "server.properties"
        props.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={self.dir / 'data'}",
            "num.partitions=1",
            "auto.create.topics.enable=true",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "message.max.bytes=16777216",
            "replica.fetch.max.bytes=16777216",
            "log.flush.interval.messages=9223372036854775807",
        ]) + "\n")
        (self.dir / "log4j.properties").write_text(
            "log4j.rootLogger=INFO, stdout\n"
            "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.kafka=WARN\nlog4j.logger.org.apache.kafka=WARN\n"
            "log4j.logger.kafka.server.KafkaServer=INFO\n")
        return props

    def _java(self, main: str, *args: str) -> list[str]:
        return [require("java", PROVISION), f"-Xmx{self.heap}", f"-Xms{self.heap}",
                "-XX:+UseG1GC", "-Djava.awt.headless=true",
                f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
                "-cp", self._classpath, main, *args]

    def command(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.dir / "server.properties"))

    def port_to_wait(self) -> int:
        return self.port

    def start(self, *, timeout_s: float = 90) -> KafkaServer:
        props = self._properties()
        if not self._formatted:
            cluster_id = uuid.uuid4().hex[:22]
            subprocess.run(self._java("kafka.tools.StorageTool", "format", "-t", cluster_id,
                                      "-c", str(props), "--ignore-formatted"),
                           check=True, capture_output=True)
            self._formatted = True
        super().start(timeout_s=timeout_s)
        return self

    def ready(self) -> None:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        deadline = time.monotonic() + 60
        while True:
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap,
                                         request_timeout_ms=5000)
                admin.list_topics()
                admin.close()
                return
            except KafkaError:
                if time.monotonic() > deadline:
                    raise ServiceError("kafka did not answer metadata requests", self.log) from None
                time.sleep(0.3)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _run_dir() -> Path:
    d = Path(os.environ.get("MOLSTREAM_DEV_RUN_DIR", CACHE / "run"))
    d.mkdir(parents=True, exist_ok=True)
    return d
