"""GET /metrics in the Prometheus text format, read with prometheus_client's own parser, after a
happy saga, a failed one, a duplicate, an event for no saga and an unreadable message, over a real
Kafka-protocol broker and PostgreSQL. The test answers the commands itself, so it knows every count.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from kafka import KafkaConsumer, KafkaProducer
from prometheus_client.metrics_core import Metric
from tests.support.kafka import KafkaTestSetup, event_envelope, new_setup
from tests.support.metrics import scrape, value
from tests.support.scenarios import SEED_ORDER, start_order
from tests.support.servers import saga_process, wait_for_status

from saga.adapters.kafka_publisher import await_acknowledgement
from saga.adapters.simulated_participants import SimulatedParticipants
from saga.domain.messages import Participant

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

FAILING_CUSTOMER = "customer-whose-payment-fails"


@contextmanager
def participants(setup: KafkaTestSetup) -> Iterator[list[dict[str, Any]]]:
    """Answers every command on this test's command topics, as simulated participants do; the
    payment of FAILING_CUSTOMER fails. Yields the replies sent, in order."""
    normal, failing = SimulatedParticipants(), SimulatedParticipants(fail_step="AUTHORIZE_PAYMENT")
    failing_sagas: set[str] = set()
    replies: list[dict[str, Any]] = []
    stop = threading.Event()
    consumer = KafkaConsumer(
        *(setup.topic(f"{p.value}_commands") for p in Participant),
        bootstrap_servers=setup.bootstrap,
        group_id=setup.simulator_group,
        auto_offset_reset="earliest",
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
        fetch_max_wait_ms=10,
    )
    producer = KafkaProducer(bootstrap_servers=setup.bootstrap, acks="all")

    def answer() -> None:
        while not stop.is_set():
            for batch in consumer.poll(timeout_ms=100).values():
                for record in batch:
                    command = json.loads(record.value)
                    if command["payload"].get("customer_id") == FAILING_CUSTOMER:
                        failing_sagas.add(command["correlation_id"])
                    side = failing if command["correlation_id"] in failing_sagas else normal
                    reply = side.handle(command)
                    assert reply is not None
                    participant = record.topic.removeprefix(f"{setup.tag}.").removesuffix("_commands")
                    future = producer.send(setup.topic(f"{participant}_events"), json.dumps(reply).encode())
                    await_acknowledgement(future, 10)
                    replies.append(reply)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield replies
    finally:
        stop.set()
        thread.join(timeout=10)
        consumer.close()
        producer.close()


def sample(families: dict[str, Metric], family: str, suffix: str = "", **labels: str) -> float:
    return value(families[family], family + suffix, **labels)


def test_metrics_count_a_happy_saga_a_failed_one_and_dead_letters(
    kafka_bootstrap: str, fresh_database_url: str, tmp_path: Path
) -> None:
    setup = new_setup(kafka_bootstrap)
    env = setup.env(fresh_database_url)
    with saga_process(["serve"], env, tmp_path / "serve.log") as base, participants(setup) as replies:
        happy = start_order(base, {**SEED_ORDER, "customer_id": "happy-customer"})
        failed = start_order(base, {**SEED_ORDER, "customer_id": FAILING_CUSTOMER})
        assert wait_for_status(base, happy, {"COMPLETED"}, timeout=30)["status"] == "COMPLETED"
        assert wait_for_status(base, failed, {"FAILED"}, timeout=30)["status"] == "FAILED"
        producer = setup.producer()
        try:
            # A reply delivered twice, an event naming no saga, bytes that are no envelope.
            last = next(r for r in replies if r["correlation_id"] == happy and r["type"] == "timer.started")
            setup.publish(producer, "timer_events", json.dumps(last).encode())
            setup.publish(producer, "order_events", event_envelope("order.created", "0" * 32, {"order_id": "o"}))
            setup.publish(producer, "order_events", b"{not json")
        finally:
            producer.close()
        dead = setup.read_all(setup.dead_letter_topic, 2)
        assert len(dead) == 2
        families = scrape(base)
        for _ in range(50):  # the duplicate may still be on its way through the consumer
            if sample(families, "saga_events", "_total", type="timer.started", outcome="duplicate") == 1:
                break
            families = scrape(base)

    assert sample(families, "saga_sagas_started", "_total") == 2
    assert sample(families, "saga_sagas_finished", "_total", status="COMPLETED") == 1
    assert sample(families, "saga_sagas_finished", "_total", status="FAILED") == 1
    assert sample(families, "saga_duration_seconds", "_count", status="COMPLETED") == 1
    assert sample(families, "saga_duration_seconds", "_count", status="FAILED") == 1
    assert 0 < sample(families, "saga_duration_seconds", "_sum", status="COMPLETED") < 30
    steps = {
        ("create_order", "success"): 2,
        ("get_payment_info", "success"): 2,
        ("authorize_payment", "success"): 1,
        ("authorize_payment", "failure"): 1,
        ("update_order_status", "success"): 1,
        ("start_order_timer", "success"): 1,
        ("cancel_order", "success"): 1,
    }
    for (command, reply), count in steps.items():
        assert sample(families, "saga_step_duration_seconds", "_count", command=command, reply=reply) == count
    assert sum(s.value for s in families["saga_step_duration_seconds"].samples if s.name.endswith("_count")) == 9
    applied = {
        "order.created": 2,
        "user.payment_info_retrieved": 2,
        "payment.authorized": 1,
        "payment.failed": 1,
        "order.status_updated": 1,
        "timer.started": 1,
        "order.cancelled": 1,
    }
    for event_type, count in applied.items():
        assert sample(families, "saga_events", "_total", type=event_type, outcome="applied") == count
    assert sample(families, "saga_events", "_total", type="timer.started", outcome="duplicate") == 1
    assert sample(families, "saga_events", "_total", type="order.created", outcome="unknown_saga") == 1
    assert sample(families, "saga_events", "_total", type="other", outcome="bad") == 1
    assert sample(families, "saga_events_dead_lettered", "_total", reason="unknown_saga") == 1
    assert sample(families, "saga_events_dead_lettered", "_total", reason="bad_message") == 1
    assert sample(families, "saga_compensations", "_total", kind="cancel_order", outcome="started") == 1
    assert sample(families, "saga_compensations", "_total", kind="cancel_order", outcome="confirmed") == 1
    assert sample(families, "saga_compensations", "_total", kind="revert_payment", outcome="started") == 0
    assert sample(families, "saga_commands_sent", "_total") == 9
    assert "saga_deadlines_passed" in families and families["saga_deadlines_passed"].type == "counter"
    assert sample(families, "saga_sagas", status="COMPLETED") == 1
    assert sample(families, "saga_sagas", status="FAILED") == 1
    assert sample(families, "saga_sagas", status="STARTED") == 0
    assert sample(families, "saga_outbox_pending_commands") == 0
    assert sample(families, "saga_outbox_oldest_pending_age_seconds") == 0
    assert sample(families, "saga_event_consumers") == 1
    assert sample(families, "saga_event_consumers_ready") == 1
    # Lag as the broker reports it: Tansu's high watermark is the first offset of its last batch
    # plus one, not the true end, so only its shape is checked here, not a figure.
    lag = families["saga_kafka_consumer_lag_records"]
    assert lag.type == "gauge"
    assert {s.labels["topic"] for s in lag.samples} <= {setup.topic(f"{p.value}_events") for p in Participant}
    assert all(s.value >= 0 for s in lag.samples)
    for family in families.values():
        assert family.name.startswith("saga_") or family.name.startswith("python_") or family.name == "process"


def test_with_the_database_down_metrics_still_export_every_counter_and_leave_its_gauges_out(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgresql://saga:saga@127.0.0.1:9/saga", "SAGA_TRANSPORT": "memory"}
    with saga_process(["serve"], env, tmp_path / "serve.log") as base:
        bad = requests.post(f"{base}/api/events", json={"type": "order.created"}, timeout=5)
        assert bad.status_code == 400 and requests.get(f"{base}/readyz", timeout=5).status_code == 503

        families = scrape(base)  # a 200, or this raises

    assert sample(families, "saga_events", "_total", type="other", outcome="bad") == 1
    assert sample(families, "saga_database_up") == 0
    assert {"saga_events_retried", "saga_events_dead_lettered", "saga_commands_sent"} <= set(families)
    assert not {"saga_sagas", "saga_outbox_pending_commands", "saga_outbox_oldest_pending_age_seconds"} & set(families)
