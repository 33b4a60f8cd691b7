"""The Kafka adapters on their own: against a real broker, and against a port where none listens."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from kafka import KafkaAdminClient, KafkaConsumer
from tests.support.kafka import new_setup
from tests.support.servers import free_port

from saga.adapters.envelope import command_envelope
from saga.adapters.kafka_consumer import InboundRecord, KafkaRecordConsumer, KafkaUnavailable
from saga.adapters.kafka_publisher import KafkaCommandPublisher, all_topics, await_acknowledgement, ensure_topics
from saga.domain.messages import Command, new_message_id
from saga.entrypoints.config import DEFAULT_TOPICS, KafkaSettings
from saga.ports.messaging import Delivered, Undelivered
from saga.ports.trace_context import traceparent

pytestmark = pytest.mark.kafka

FAST = dict(
    session_timeout_ms=2000,
    heartbeat_interval_ms=500,
    fetch_max_wait_ms=10,
    connect_timeout_ms=500,
    request_timeout_ms=2000,
    delivery_timeout_ms=3000,
    retry_backoff_max_ms=500,
)


def settings_for(bootstrap: str, tag: str) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        group_id=f"{tag}.group",
        topics={name: f"{tag}.{name}" for name in DEFAULT_TOPICS},
        dead_letter_topic=f"{tag}.dlq",
        partitions=3,
        **FAST,  # type: ignore[arg-type]
    )


def command(command_type: str, saga_id: str) -> Command:
    return Command(command_type, saga_id, {"user_id": "cust_1"}, new_message_id(), datetime.now(UTC))


def test_without_a_broker_commands_stay_undelivered_and_health_says_why() -> None:
    publisher = KafkaCommandPublisher(settings_for(f"127.0.0.1:{free_port()}", "down"))
    started = time.monotonic()
    results = publisher.publish([command("get_payment_info", "3f1e0f43-6b7a-4d52-9b53-2b8f2b6f6a01")] * 3)
    assert [type(result) for result in results] == [Undelivered] * 3
    assert all("kafka unreachable" in result.reason for result in results if isinstance(result, Undelivered))
    assert time.monotonic() - started < 5
    health = publisher.healthy()
    assert health is not None and "kafka unreachable" in health
    publisher.close()
    assert ensure_topics(settings_for(f"127.0.0.1:{free_port()}", "down")) is False
    with pytest.raises(KafkaUnavailable):
        KafkaRecordConsumer(settings_for(f"127.0.0.1:{free_port()}", "down"), ["x"], "g", "test")


def test_commands_are_published_keyed_by_saga_with_the_envelope_and_headers(kafka_bootstrap: str) -> None:
    tag = new_setup(kafka_bootstrap).tag
    settings = settings_for(kafka_bootstrap, tag)
    publisher = KafkaCommandPublisher(settings)
    saga_id = "3f1e0f43-6b7a-4d52-9b53-2b8f2b6f6a02"
    sent = [command("get_payment_info", saga_id), command("create_order", saga_id)]
    try:
        assert publisher.publish(sent) == [Delivered(), Delivered()]
        assert publisher.healthy() is None
    finally:
        publisher.close()

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        described = {topic["name"]: topic for topic in admin.describe_topics(all_topics(settings))}
    finally:
        admin.close()
    assert set(described) == set(all_topics(settings))
    assert all(len(topic["partitions"]) == 3 for topic in described.values())
    assert ensure_topics(settings) is True  # existing topics are fine

    for expected, topic in [(sent[0], f"{tag}.user_commands"), (sent[1], f"{tag}.order_commands")]:
        consumer = KafkaConsumer(
            topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", fetch_max_wait_ms=10
        )
        try:
            records = [record for batch in consumer.poll(timeout_ms=5000).values() for record in batch]
        finally:
            consumer.close()
        assert len(records) == 1
        record = records[0]
        assert record.key == saga_id.encode()
        assert json.loads(record.value) == command_envelope(expected)
        assert dict(record.headers) == {
            "message_id": expected.message_id.encode(),
            "type": expected.type.encode(),
            "traceparent": str(traceparent(expected.saga_id, expected.message_id)).encode(),
        }


def test_uncommitted_records_come_back_and_committed_ones_do_not(kafka_bootstrap: str) -> None:
    setup = new_setup(kafka_bootstrap)
    settings = settings_for(kafka_bootstrap, setup.tag)
    topic = settings.topics["order_events"]
    assert ensure_topics(settings)
    producer = setup.producer()
    try:
        for index in range(4):
            await_acknowledgement(producer.send(topic, value=f"event-{index}".encode(), key=b"saga-1"), 10)
    finally:
        producer.close()

    def read(expected: int) -> list[InboundRecord]:
        consumer = KafkaRecordConsumer(settings, [topic], settings.group_id, "test")
        try:
            records: list[InboundRecord] = []
            deadline = time.monotonic() + 15
            while len(records) < expected and time.monotonic() < deadline:
                records += consumer.poll(200)
            if len(records) >= 2:
                consumer.rewind(records[2:])  # the last ones were not done: read them again
                records = records[:2] + consumer.poll(2000)
                consumer.commit(records[:2])
            return records
        finally:
            consumer.close()

    first = read(4)
    assert [record.value for record in first] == [b"event-0", b"event-1", b"event-2", b"event-3"]
    assert first[0].source == f"{topic}/{first[0].partition}@0"
    # A new member of the group resumes after the last committed record.
    second = read(2)
    assert [record.value for record in second][:2] == [b"event-2", b"event-3"]
