"""The publisher contract over the Kafka publisher, against a real Kafka-protocol broker."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from kafka import KafkaConsumer, TopicPartition
from tests.support.kafka import new_setup
from tests.support.publisher_contract import PublisherContract, PublisherUnderTest
from tests.support.servers import free_port

from saga.adapters.kafka_publisher import KafkaCommandPublisher
from saga.adapters.kafka_settings import DEFAULT_TOPICS, KafkaSettings
from saga.domain.messages import Participant
from saga.ports.messaging import CommandPublisher

pytestmark = pytest.mark.kafka

FAST = {
    "session_timeout_ms": 2000,
    "heartbeat_interval_ms": 500,
    "fetch_max_wait_ms": 10,
    "connect_timeout_ms": 500,
    "request_timeout_ms": 2000,
    "delivery_timeout_ms": 3000,
    "retry_backoff_max_ms": 500,
}


def settings_for(bootstrap: str, tag: str) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        group_id=f"{tag}.group",
        topics={name: f"{tag}.{name}" for name in DEFAULT_TOPICS},
        dead_letter_topic=f"{tag}.dlq",
        partitions=2,
        **FAST,  # type: ignore[arg-type]
    )


def command_order_ids(settings: KafkaSettings, expected: int, timeout: float = 20.0) -> list[str]:
    """The order_id of every command on the command topics, read from the start until `expected` came."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    try:
        topics = [settings.command_topic(participant) for participant in Participant]
        assignment = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(assignment)
        consumer.seek_to_beginning(*assignment)
        order_ids: list[str] = []
        deadline = time.monotonic() + timeout
        while len(order_ids) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                order_ids += [json.loads(record.value)["payload"]["order_id"] for record in batch]
        return order_ids
    finally:
        consumer.close()


class TestKafkaPublisher(PublisherContract):
    @pytest.fixture
    def reachable(self, kafka_bootstrap: str) -> Iterator[PublisherUnderTest]:
        settings = settings_for(kafka_bootstrap, new_setup(kafka_bootstrap).tag)
        publisher = KafkaCommandPublisher(settings)
        yield PublisherUnderTest(publisher, lambda expected: command_order_ids(settings, expected))
        publisher.close()

    @pytest.fixture
    def unreachable(self) -> Iterator[CommandPublisher]:
        publisher = KafkaCommandPublisher(settings_for(f"127.0.0.1:{free_port()}", "down"))
        yield publisher
        publisher.close()
