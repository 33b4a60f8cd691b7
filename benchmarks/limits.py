"""This machine's limits, measured on the same servers as the sagas.

- PostgreSQL: autocommit single-row UPDATEs per second from psycopg2, one connection
  and eight (in threads, one row each).
- SQLite: the same on a WAL file opened as the orchestrator opens it (BEGIN IMMEDIATE).
- Kafka: produce-to-consume round trip of one small message with the orchestrator's
  client settings (fetch_max_wait_ms, linger_ms from the same environment).
- HTTP: one command POSTed to the HTTP participant simulator and its reply read.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg2

from benchmarks.client import summary_ms

warnings.filterwarnings("ignore", category=DeprecationWarning)


def pg_commits_per_second(dsn: str, connections: int, seconds: float) -> float:
    setup = psycopg2.connect(dsn)
    setup.autocommit = True
    with setup.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_counter (id int PRIMARY KEY, n bigint NOT NULL)")
        cursor.execute(
            "INSERT INTO bench_counter SELECT g, 0 FROM generate_series(0, %s) g ON CONFLICT DO NOTHING", (connections,)
        )
    setup.close()
    counts = [0] * connections
    start = threading.Barrier(connections + 1)
    stop = threading.Event()

    def worker(index: int) -> None:
        connection = psycopg2.connect(dsn)
        connection.autocommit = True
        cursor = connection.cursor()
        start.wait()
        done = 0
        while not stop.is_set():
            cursor.execute("UPDATE bench_counter SET n = n + 1 WHERE id = %s", (index,))
            done += 1
        counts[index] = done
        connection.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - began)


def sqlite_commits_per_second(path: Path, seconds: float) -> float:
    """One connection, WAL, BEGIN IMMEDIATE; UPDATE; COMMIT, as the orchestrator's SQLite engine does."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=30)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE IF NOT EXISTS bench_counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
    connection.execute("INSERT OR IGNORE INTO bench_counter VALUES (0, 0)")
    done = 0
    began = time.perf_counter()
    deadline = began + seconds
    while time.perf_counter() < deadline:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("UPDATE bench_counter SET n = n + 1 WHERE id = 0")
        connection.execute("COMMIT")
        done += 1
    elapsed = time.perf_counter() - began
    connection.close()
    return done / elapsed


def assign_all_partitions(consumer: Any, topic: str) -> list[Any]:
    """Assigns every partition of `topic` to `consumer`, once the broker knows them; returns them."""
    from kafka import TopicPartition

    partitions = None
    deadline = time.monotonic() + 10
    while not partitions and time.monotonic() < deadline:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            time.sleep(0.05)
    assignment = [TopicPartition(topic, p) for p in sorted(partitions or {0})]
    consumer.assign(assignment)
    return assignment


def kafka_round_trip(env: Mapping[str, str], samples: int) -> dict[str, Any]:
    """Produce one small record; time until a consumer with the orchestrator's settings, already polling, has it.

    The consumer polls in its own thread all along, as the orchestrator's does, so a
    record lands at a random point of its fetch wait; each send waits for the previous
    record to arrive, then a random 0-5 ms, so sends do not lock to the fetch cycle.
    """
    import random

    from kafka import KafkaConsumer

    from saga.adapters.kafka_publisher import create_producer
    from saga.entrypoints.config import Settings

    settings = Settings.from_env(dict(env)).kafka
    topic = f"bench-rtt-{uuid.uuid4().hex[:8]}"
    producer = create_producer(settings, "saga-bench-rtt")
    # Creates the topic (auto-creation, 4 partitions on Tansu) before the consumer looks for it.
    producer.send(topic, key=b"warm", value=b"{}").get(timeout=10)  # type: ignore[no-untyped-call]
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers.split(","),
        client_id="saga-bench-rtt",
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        max_poll_records=settings.max_poll_records,
        request_timeout_ms=settings.request_timeout_ms,
    )
    arrivals: dict[bytes, float] = {}
    arrived = threading.Condition()
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            for batch in consumer.poll(timeout_ms=200).values():
                now = time.perf_counter()
                with arrived:
                    for record in batch:
                        if record.key is not None:
                            arrivals[record.key] = now
                    arrived.notify_all()

    try:
        consumer.seek_to_beginning(*assign_all_partitions(consumer, topic))
        thread = threading.Thread(target=consume, daemon=True)
        thread.start()
        with arrived:
            arrived.wait_for(lambda: b"warm" in arrivals, timeout=10)
        timings: list[float] = []
        payload = json.dumps({"type": "order.created", "correlation_id": str(uuid.uuid4()), "payload": {}}).encode()
        for index in range(samples + 20):
            time.sleep(random.uniform(0, 0.005))
            key = str(uuid.uuid4()).encode()
            began = time.perf_counter()
            producer.send(topic, key=key, value=payload)
            with arrived:

                def landed(key: bytes = key) -> bool:
                    return key in arrivals

                if arrived.wait_for(landed, timeout=10) and index >= 20:
                    timings.append(arrivals[key] - began)
        stop.set()
        thread.join(5)
        result = summary_ms(timings)
        result["fetch_max_wait_ms"] = settings.fetch_max_wait_ms
        result["linger_ms"] = settings.linger_ms
        return result
    finally:
        stop.set()
        consumer.close()
        producer.close(timeout=5)


def kafka_step_round_trip(env: Mapping[str, str], samples: int) -> dict[str, Any]:
    """A saga step's floor over Kafka: a record to topic A, an echo process-alike answering on topic B.

    Two hops, each with a consumer already waiting in its fetch (as the simulator and the
    orchestrator are): produce A -> echo consumes A, produces B -> measuring consumer has B.
    """
    from kafka import KafkaConsumer

    from saga.adapters.kafka_publisher import create_producer
    from saga.entrypoints.config import Settings

    settings = Settings.from_env(dict(env)).kafka
    tag = uuid.uuid4().hex[:8]
    topic_a, topic_b = f"bench-ping-{tag}", f"bench-pong-{tag}"
    producer = create_producer(settings, "saga-bench-ping")
    echo_producer = create_producer(settings, "saga-bench-echo")
    for topic in (topic_a, topic_b):
        producer.send(topic, key=b"warm", value=b"{}").get(timeout=10)  # type: ignore[no-untyped-call]

    def consumer_for(topic: str) -> KafkaConsumer:
        consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers.split(","),
            enable_auto_commit=False,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            max_poll_records=settings.max_poll_records,
            request_timeout_ms=settings.request_timeout_ms,
        )
        consumer.seek_to_end(*assign_all_partitions(consumer, topic))
        return consumer

    pings, pongs = consumer_for(topic_a), consumer_for(topic_b)
    stop = threading.Event()

    def echo() -> None:
        while not stop.is_set():
            for batch in pings.poll(timeout_ms=200).values():
                for record in batch:
                    if record.key != b"warm":
                        echo_producer.send(topic_b, key=record.key, value=record.value)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    timings: list[float] = []
    try:
        time.sleep(0.5)
        for index in range(samples + 20):
            key = str(uuid.uuid4()).encode()
            began = time.perf_counter()
            producer.send(topic_a, key=key, value=b'{"type":"create_order"}')
            received = False
            while not received and time.perf_counter() - began < 10:
                for batch in pongs.poll(timeout_ms=1000).values():
                    received = received or any(record.key == key for record in batch)
            if index >= 20 and received:
                timings.append(time.perf_counter() - began)
    finally:
        stop.set()
        thread.join(5)
        for closeable in (pings, pongs):
            closeable.close()
        producer.close(timeout=5)
        echo_producer.close(timeout=5)
    return summary_ms(timings)


def http_round_trip(simulator_url: str, samples: int) -> dict[str, Any]:
    """One `create_order` command POSTed to the HTTP simulator and its 200 reply read (requests, keep-alive)."""
    import requests

    session = requests.Session()
    timings: list[float] = []
    try:
        for index in range(samples + 20):
            command = {
                "type": "create_order",
                "correlation_id": str(uuid.uuid4()),
                "message_id": str(uuid.uuid4()),
                "timestamp": "2026-11-28T12:00:00.000000+00:00",
                "payload": {"customer_id": "bench", "amount_cents": 1299, "currency": "USD", "order_details": {}},
            }
            began = time.perf_counter()
            response = session.post(
                f"{simulator_url}/commands",
                data=json.dumps(command).encode(),
                headers={"Content-Type": "application/json"},
                timeout=10,
            )
            response.json()
            if index >= 20:
                timings.append(time.perf_counter() - began)
    finally:
        session.close()
    return summary_ms(timings)


def count_topic_records(
    bootstrap: str,
    topics: list[str],
    idle_seconds: float = 1.5,
    timeout: float = 120.0,
    produced_at: dict[tuple[str, str], float] | None = None,
) -> dict[str, int]:
    """Records on each topic, read from the start until nothing new came for `idle_seconds`.

    Tansu's end offsets are not the true end (benchmarks/README.md), so the records are counted. With
    `produced_at`, the producer's timestamp (seconds) of each event record is kept by (key, type).
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        client_id="saga-bench-count",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        max_poll_records=5000,
    )
    counts = dict.fromkeys(topics, 0)
    try:
        assignment = []
        for topic in topics:
            for partition in sorted(consumer.partitions_for_topic(topic) or set()):
                assignment.append(TopicPartition(topic, partition))
        if not assignment:
            return counts
        consumer.assign(assignment)
        consumer.seek_to_beginning(*assignment)
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < idle_seconds:
            batches = consumer.poll(timeout_ms=200)
            if batches:
                quiet_since = time.monotonic()
            for topic_partition, records in batches.items():
                counts[topic_partition.topic] += len(records)
                if produced_at is not None and topic_partition.topic.endswith("_events"):
                    for record in records:
                        try:
                            kind = json.loads(record.value)["type"]
                        except (ValueError, KeyError, TypeError):
                            continue
                        key = (record.key or b"").decode(errors="replace")
                        produced_at.setdefault((key, kind), record.timestamp / 1000)
        return counts
    finally:
        consumer.close()
