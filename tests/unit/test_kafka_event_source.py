"""The Kafka event loop's decisions about one record, with a stand-in for the broker client.

The broker itself is exercised in tests/integration; here the client refuses the
dead-letter topic, which a real broker does only with access control.
"""

from __future__ import annotations

from typing import Any

import pytest

from saga.adapters.kafka_consumer import InboundRecord, KafkaUnavailable
from saga.adapters.kafka_settings import KafkaSettings
from saga.entrypoints.kafka_events import ATTEMPTS_BEFORE_DEAD_LETTER, KafkaEventSource
from saga.service_layer.intake import EventIntake
from saga.testing import SagaHarness


class RefusingDeadLetters:
    def __init__(self) -> None:
        self.tries = 0

    def dead_letter(self, record: InboundRecord, topic: str, reason: str) -> None:
        self.tries += 1
        raise KafkaUnavailable("TopicAuthorizationFailedError")


def bad_record() -> InboundRecord:
    return InboundRecord("order_events", 0, 7, b"k", b"not json", (), 0)


def test_a_record_the_dead_letter_topic_refuses_is_retried_then_skipped_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    harness = SagaHarness()
    source = KafkaEventSource(KafkaSettings(), EventIntake(harness.orchestrator, harness.metrics), harness.metrics)
    consumer: Any = RefusingDeadLetters()

    verdicts = [source._process_one(consumer, bad_record()) for _ in range(ATTEMPTS_BEFORE_DEAD_LETTER)]

    assert all(verdict is not None and "dead-letter" in verdict for verdict in verdicts[:-1])
    assert verdicts[-1] is None  # done: the partition moves on
    assert consumer.tries == ATTEMPTS_BEFORE_DEAD_LETTER
    assert harness.metrics.get("events_dropped") == 1
    assert "order_events/0@7 could not be dead-lettered" in caplog.text and "not json" in caplog.text


@pytest.mark.parametrize("variable", ["SAGA_KAFKA_DLQ_TOPIC", "SAGA_TOPIC_ORDER_EVENTS"])
def test_an_illegal_topic_name_stops_the_start_with_its_variable(variable: str) -> None:
    from saga.entrypoints.config import ConfigError, Settings

    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "k:9092", variable: "orders events!"})
