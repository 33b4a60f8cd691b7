"""The Kafka transport end to end: `saga serve` and `saga simulate --transport kafka` as separate
processes over a real Kafka-protocol broker, with real PostgreSQL. No mocks.

Each test has its own topics and consumer groups (`KafkaTestSetup`) and its own database.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tests.support.kafka import KafkaTestSetup, event_envelope, new_setup, tansu_broker
from tests.support.metrics import counters
from tests.support.scenarios import (
    FAILURE_PATHS,
    FINAL,
    STEP_COMMANDS,
    SUCCESS_EVENTS,
    assert_all_complete,
    assert_completes,
    assert_fails_with_compensations,
    history,
    start_order,
)
from tests.support.servers import (
    free_port,
    saga_background,
    saga_process,
    spawn_saga,
    stop_process,
    wait_for_log,
    wait_for_status,
    wait_until_answers,
)

from saga.adapters.kafka_consumer import KafkaRecordConsumer
from saga.adapters.kafka_settings import DEFAULT_TOPICS, KafkaSettings
from saga.adapters.sql import database_url as sqlalchemy_url

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

SIMULATOR_READY = "simulator ready"
CONFIRMATION = {"cancel_order": "order.cancelled", "revert_payment": "payment.released"}


@dataclass
class KafkaSystem:
    setup: KafkaTestSetup
    database_url: str
    folder: Path

    def env(self, **extra: str) -> dict[str, str]:
        return self.setup.env(self.database_url, **extra)

    @contextmanager
    def orchestrator(self, log_name: str = "serve.log") -> Iterator[str]:
        with saga_process(["serve"], self.env(), self.folder / log_name) as base:
            yield base

    @contextmanager
    def simulator(self, *options: str, log_name: str = "simulator.log") -> Iterator[Path]:
        log = self.folder / log_name
        with saga_background(self.setup.simulator_args(*options), self.env(), log, SIMULATOR_READY):
            yield log


@pytest.fixture
def system(kafka_bootstrap: str, fresh_database_url: str, tmp_path: Path) -> KafkaSystem:
    return KafkaSystem(new_setup(kafka_bootstrap), fresh_database_url, tmp_path)


def wait_for_counter(base: str, name: str, expected: int, timeout: float = 10.0) -> None:
    """Waits until the counter reaches `expected`, then checks it went no further."""
    deadline = time.monotonic() + timeout
    while counters(base).get(name, 0) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert counters(base).get(name, 0) == expected, name


def event_message_ids(saga: dict[str, Any]) -> list[str]:
    return [entry["message_id"] for entry in saga["history"] if entry["kind"] == "event"]


def test_happy_path(system: KafkaSystem) -> None:
    with system.orchestrator() as base, system.simulator():
        saga = assert_completes(base)
        assert saga["ignored_events"] == 0


def test_each_step_failure_runs_its_compensations(system: KafkaSystem) -> None:
    with system.orchestrator() as base:
        for step, compensations in FAILURE_PATHS:
            # One simulator per failing step, in one consumer group: each resumes where the last stopped.
            with system.simulator("--fail-step", step, log_name=f"simulator-{step}.log"):
                saga = assert_fails_with_compensations(base, step, compensations)
            events = history(saga, "event")
            confirmations = [CONFIRMATION[command] for command in compensations]
            assert events[len(events) - len(confirmations) :] == confirmations, events


BAD_MESSAGES: list[tuple[str, bytes, str]] = [
    ("not JSON", b"{not json", "not valid UTF-8 JSON"),
    ("not an object", b'["order.created"]', "must be a JSON object"),
    (
        "missing type",
        json.dumps({"correlation_id": str(uuid.uuid4()), "timestamp": "2026-11-28T12:00:00", "payload": {}}).encode(),
        "type must be",
    ),
    (
        "missing correlation_id",
        json.dumps(
            {"type": "order.created", "timestamp": "2026-11-28T12:00:00", "payload": {"order_id": "o1"}}
        ).encode(),
        "correlation_id",
    ),
    ("unknown type", event_envelope("order.exploded", str(uuid.uuid4()), {}), "unknown event type"),
    (
        "unknown saga",
        event_envelope("order.created", "5f0c7a58-9d0e-4a43-a3b5-0d1f1f7c0001", {"order_id": "o1"}),
        "no saga 5f0c7a58-9d0e-4a43-a3b5-0d1f1f7c0001",
    ),
    (
        "missing payload field",
        event_envelope("order.created", str(uuid.uuid4()), {}),
        "order.created needs payload.order_id",
    ),
]


def test_bad_messages_go_to_the_dead_letter_topic_and_a_good_saga_behind_them_completes(system: KafkaSystem) -> None:
    setup = system.setup
    partitions = 4
    with system.orchestrator() as base, system.simulator():
        producer = setup.producer()
        try:
            # On every partition of order_events, so the good saga's first reply queues behind them.
            for partition in range(partitions):
                for index, (_, value, _) in enumerate(BAD_MESSAGES):
                    setup.publish(producer, "order_events", value, key=f"bad-{index}".encode(), partition=partition)
        finally:
            producer.close()
        assert_completes(base)
        dead = setup.read_all(setup.dead_letter_topic, len(BAD_MESSAGES) * partitions)
        assert len(dead) == len(BAD_MESSAGES) * partitions
        by_key: dict[bytes, list[tuple[bytes, str]]] = {}
        for record in dead:
            headers = {name: value.decode() for name, value in record.headers}
            assert headers["dlq_topic"] == setup.topic("order_events")
            assert int(headers["dlq_partition"]) in range(partitions) and int(headers["dlq_offset"]) >= 0
            by_key.setdefault(record.key, []).append((record.value, headers["dlq_reason"]))
        for index, (name, value, reason) in enumerate(BAD_MESSAGES):
            forwarded = by_key[f"bad-{index}".encode()]
            assert len(forwarded) == partitions, name
            for forwarded_value, forwarded_reason in forwarded:
                assert forwarded_value == value, name  # unchanged
                assert reason in forwarded_reason, (name, forwarded_reason)
        wait_for_counter(base, "events_dead_lettered", len(BAD_MESSAGES) * partitions)


def test_duplicated_replies_change_nothing(system: KafkaSystem) -> None:
    count = 10
    with system.orchestrator() as base, system.simulator("--duplicate"):
        sagas = assert_all_complete(base, count)
        for saga in sagas:
            assert len(set(event_message_ids(saga))) == len(SUCCESS_EVENTS)
        # Every reply came twice; the second of each was recognised by its message_id,
        # changed nothing, and is recorded in its saga's history.
        wait_for_counter(base, "events_duplicate", count * len(SUCCESS_EVENTS))
        assert counters(base).get("events_applied", 0) == count * len(SUCCESS_EVENTS)
        for saga in sagas:
            after = requests.get(f"{base}/api/sagas/{saga['id']}", timeout=10).json()
            assert after["status"] == "COMPLETED" and after["ignored_events"] == len(SUCCESS_EVENTS)
            noted = [entry for entry in after["history"] if entry["kind"] == "ignored"]
            assert {entry["detail"] for entry in noted} == {"duplicate message_id"}


def test_the_seed_manual_flow_with_events_published_by_hand(system: KafkaSystem) -> None:
    setup = system.setup
    replies: list[tuple[str, str, dict[str, Any]]] = [
        ("order_events", "order.created", {"order_id": "order_manual_1", "status": "pendingPayment"}),
        ("user_events", "user.payment_info_retrieved", {"payment_info": {"card_last4": "4242"}}),
        ("payment_events", "payment.authorized", {"payment_id": "pay_manual_1"}),
        ("order_events", "order.status_updated", {"status": "CREATED"}),
        ("timer_events", "timer.started", {}),
    ]
    with system.orchestrator() as base:
        saga_id = start_order(base)
        producer = setup.producer()
        try:
            for index, (topic, event_type, payload) in enumerate(replies):
                # As a person would: wait for the command, then answer it (no message_id, no UTC offset).
                wait_for_command(base, saga_id, STEP_COMMANDS[index])
                setup.publish(producer, topic, event_envelope(event_type, saga_id, payload), key=saga_id.encode())
        finally:
            producer.close()
        saga = wait_for_status(base, saga_id, FINAL)
        assert saga["status"] == "COMPLETED", saga
        assert saga["order_id"] == "order_manual_1" and saga["payment_id"] == "pay_manual_1"
        assert history(saga, "event") == SUCCESS_EVENTS


def wait_for_command(base: str, saga_id: str, command: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        saga = requests.get(f"{base}/api/sagas/{saga_id}", timeout=5).json()
        if command in history(saga, "command"):
            return
        time.sleep(0.05)
    raise AssertionError(f"saga {saga_id} never sent {command}")


def read_received(log: Path) -> list[tuple[str, str, str]]:
    lines = [line.split() for line in log.read_text().splitlines() if line.strip()]
    return [(parts[0], parts[1], parts[2]) for parts in lines]


def wait_for_completed(base: str, at_least: int, timeout: float = 30.0) -> int:
    """Waits until at least `at_least` sagas are COMPLETED; returns how many are."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        completed = len(requests.get(f"{base}/api/sagas?status=COMPLETED&limit=1000", timeout=5).json())
        if completed >= at_least:
            return completed
        time.sleep(0.01)
    raise AssertionError(f"fewer than {at_least} sagas completed within {timeout}s")


def test_orchestrator_killed_in_the_middle_of_50_sagas_loses_nothing(system: KafkaSystem) -> None:
    count = 50
    received = system.folder / "received.log"
    port = free_port()
    # Short step deadlines: a command claimed by the killed process is re-sent by its saga
    # well before that claim's lease ends.
    env = system.env(SAGA_STEP_DEADLINE_SECONDS="5", SAGA_STEP_RESENDS="5")
    base = f"http://127.0.0.1:{port}"
    with ExitStack() as stack:
        stack.enter_context(system.simulator("--delay-ms", "50", "--received-log", str(received)))
        first = spawn_saga(["serve", "--port", str(port)], env, system.folder / "serve-1.log")
        stack.callback(stop_process, first)
        wait_until_answers(base + "/healthz", first, system.folder / "serve-1.log")
        ids = [start_order(base) for _ in range(count)]
        completed_before_kill = wait_for_completed(base, at_least=5)
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = spawn_saga(["serve", "--port", str(port)], env, system.folder / "serve-2.log")
        stack.callback(stop_process, second)
        wait_until_answers(base + "/healthz", second, system.folder / "serve-2.log")
        sagas: list[dict[str, Any]] = [wait_for_status(base, saga_id, FINAL, timeout=60) for saga_id in ids]
    assert completed_before_kill < count, "the orchestrator was killed after every saga had finished"
    assert [saga["status"] for saga in sagas] == ["COMPLETED"] * count, [saga["error"] for saga in sagas]
    seen = {message_id for message_id, _, _ in read_received(received)}
    for saga in sagas:
        assert history(saga, "event") == SUCCESS_EVENTS  # each reply applied exactly once
        assert len(set(event_message_ids(saga))) == len(SUCCESS_EVENTS)
        commands = [entry["message_id"] for entry in saga["history"] if entry["kind"] == "command"]
        assert set(commands) <= seen, saga["id"]  # the participants saw every command


def test_service_starts_without_kafka_and_finishes_the_saga_once_the_broker_comes(
    fresh_database_url: str, tmp_path: Path
) -> None:
    # A broker of its own: this test decides when it starts.
    port = free_port()
    setup = new_setup(f"127.0.0.1:{port}")
    system = KafkaSystem(setup, fresh_database_url, tmp_path)
    with system.orchestrator() as base:
        saga_id = start_order(base)
        ready = requests.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 503, ready.text
        assert "kafka" in json.dumps(ready.json()["problems"]).lower()
        assert requests.get(f"{base}/api/sagas/{saga_id}", timeout=5).json()["status"] == "STARTED"
        # Both directions have found the broker missing before it comes.
        wait_for_log(tmp_path / "serve.log", "stay in the outbox")
        wait_for_log(tmp_path / "serve.log", "kafka consumer: no broker answered")
        # The relay logs inside its transaction and counts after the commit: wait for the count.
        deadline = time.monotonic() + 10
        while counters(base).get("commands_undelivered", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert counters(base)["commands_undelivered"] >= 1
        with tansu_broker(port, tmp_path / "tansu.log"), system.simulator():
            saga = wait_for_status(base, saga_id, FINAL, timeout=30)
            assert saga["status"] == "COMPLETED", saga
            assert history(saga, "event") == SUCCESS_EVENTS
            assert requests.get(f"{base}/readyz", timeout=10).status_code == 200


def test_serve_and_worker_in_one_group_on_one_database_share_the_work(system: KafkaSystem) -> None:
    count = 30
    received = system.folder / "received.log"
    worker_log = system.folder / "worker.log"
    with (
        system.orchestrator(log_name="serve.log") as base,
        saga_background(["worker"], system.env(), worker_log, "assigned"),
        system.simulator("--received-log", str(received)),
    ):
        wait_for_log(system.folder / "serve.log", "assigned 8 partition(s)")
        wait_for_log(worker_log, "assigned 8 partition(s)")
        sagas = assert_all_complete(base, count)
    for saga in sagas:
        assert saga["ignored_events"] == 0
        assert len(set(event_message_ids(saga))) == len(SUCCESS_EVENTS)
    message_ids = [message_id for message_id, _, _ in read_received(received)]
    assert len(message_ids) == count * len(STEP_COMMANDS)
    assert len(set(message_ids)) == len(message_ids), "a command was sent twice"
    serve_events = (system.folder / "serve.log").read_text().count("ended COMPLETED")
    worker_events = worker_log.read_text().count("ended COMPLETED")
    assert serve_events + worker_events == count
    assert serve_events > 0 and worker_events > 0, (serve_events, worker_events)


@contextmanager
def database_refusing_connections(server_url: str, database_url: str) -> Iterator[None]:
    """Makes one database unreachable (new connections refused, open ones ended) until the block ends."""
    name = make_url(database_url).database
    admin = create_engine(sqlalchemy_url(server_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"), {"name": name}
            )
        yield
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
        admin.dispose()


def test_an_event_waits_in_kafka_while_the_database_is_down(system: KafkaSystem, postgres_url: str) -> None:
    setup = system.setup
    log = system.folder / "serve.log"
    with system.orchestrator() as base:
        wait_for_log(log, "assigned 16 partition(s)")
        saga_id = start_order(base)
        wait_for_command(base, saga_id, "create_order")
        producer = setup.producer()
        try:
            with database_refusing_connections(postgres_url, system.database_url):
                reply = event_envelope("order.created", saga_id, {"order_id": "order_1"}, message_id=str(uuid.uuid4()))
                setup.publish(producer, "order_events", reply, key=saga_id.encode())
                wait_for_log(log, "not processed (StorageUnavailable")
                ready = requests.get(f"{base}/readyz", timeout=10)
                assert ready.status_code == 503 and "database" in ready.json()["problems"]
        finally:
            producer.close()
        wait_for_command(base, saga_id, "get_payment_info")
        saga = requests.get(f"{base}/api/sagas/{saga_id}", timeout=5).json()
        assert history(saga, "event") == ["order.created"] and saga["order_id"] == "order_1"
        assert counters(base)["events_retried"] >= 1
        assert counters(base).get("events_dead_lettered", 0) == 0


def test_several_event_consumers_in_one_process_complete_every_saga_once(system: KafkaSystem) -> None:
    env = system.env(SAGA_KAFKA_CONSUMERS="3")
    with saga_process(["serve"], env, system.folder / "serve.log") as base, system.simulator():
        sagas = assert_all_complete(base, 20)
    for saga in sagas:
        assert len(set(event_message_ids(saga))) == len(SUCCESS_EVENTS)


# A session long enough that a join on Tansu visibly takes time (it holds a JoinGroup for
# half the session) and a member that did not leave is visibly waited for.
SLOW_GROUP = {
    "SAGA_KAFKA_SESSION_TIMEOUT_MS": "10000",
    "SAGA_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
    "SAGA_KAFKA_REQUEST_TIMEOUT_MS": "30000",
    "SAGA_KAFKA_DELIVERY_TIMEOUT_MS": "40000",
}


def seconds_until_a_new_member_holds_every_partition(system: KafkaSystem, timeout: float = 40.0) -> float:
    settings = KafkaSettings(
        bootstrap_servers=system.setup.bootstrap,
        group_id=system.setup.orchestrator_group,
        topics={name: system.setup.topic(name) for name in DEFAULT_TOPICS},
        dead_letter_topic=system.setup.dead_letter_topic,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
        fetch_max_wait_ms=10,
        request_timeout_ms=30_000,
        delivery_timeout_ms=40_000,
    )
    consumer = KafkaRecordConsumer(settings, settings.event_topics(), settings.group_id, "newcomer")
    try:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            consumer.poll(100)
            if consumer.in_stable_group() and len(consumer.assignment()) == 4 * settings.partitions:
                break
        return time.monotonic() - started
    finally:
        consumer.close()


def test_ready_only_in_a_stable_group_and_a_stopped_worker_leaves_it(system: KafkaSystem) -> None:
    port = free_port()
    log = system.folder / "worker.log"
    worker = spawn_saga(["worker", "--port", str(port)], system.env(**SLOW_GROUP), log)
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/healthz", worker, log)
        first = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert first.status_code == 503, first.text
        assert system.setup.orchestrator_group in first.json()["problems"]["consumers"]
        deadline = time.monotonic() + 30
        while requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        # Stopped as the operator in the report did: SIGINT, then SIGTERM right after.
        worker.send_signal(signal.SIGINT)
        time.sleep(0.2)
        worker.send_signal(signal.SIGTERM)
        worker.wait(20)
    finally:
        stop_process(worker)
    # A member that left is not waited for: the newcomer joins as fast as an empty group
    # allows (half a session on Tansu), not after the old member's session ran out (18 s).
    assert seconds_until_a_new_member_holds_every_partition(system) < 9.0
