"""The Kafka event loop's decisions about one record, with a stand-in for the broker client.

The broker itself is exercised in tests/integration; here the client refuses the
dead-letter topic, which a real broker does only with access control.
"""

from __future__ import annotations

from typing import Any

import pytest

from saga.adapters.envelope import decode_event
from saga.adapters.kafka_consumer import InboundRecord, KafkaUnavailable
from saga.adapters.kafka_settings import KafkaSettings
from saga.entrypoints.kafka_events import ATTEMPTS_BEFORE_DEAD_LETTER, KafkaEventSource
from saga.service_layer.receiver import EventReceiver
from saga.testing import SagaHarness


class RefusingDeadLetters:
    """Refuses the dead-letter topic `refusals` times (a long broker outage), then accepts."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.tries = 0
        self.dead_lettered: list[InboundRecord] = []

    def dead_letter(self, record: InboundRecord, topic: str, reason: str) -> None:
        self.tries += 1
        if self.tries <= self.refusals:
            raise KafkaUnavailable("KafkaTimeoutError: the dead-letter topic did not answer")
        self.dead_lettered.append(record)


def bad_record() -> InboundRecord:
    return InboundRecord("order_events", 0, 7, b"k", b"not json", (), 0)


def test_a_record_the_dead_letter_topic_refuses_is_never_passed_until_it_is_dead_lettered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    harness = SagaHarness()
    source = KafkaEventSource(
        KafkaSettings(), EventReceiver(harness.orchestrator, harness.metrics, decode_event), harness.metrics
    )
    refusals = 4 * ATTEMPTS_BEFORE_DEAD_LETTER
    consumer: Any = RefusingDeadLetters(refusals)

    rounds = [source._process(consumer, [bad_record()]) for _ in range(refusals)]

    # Each round: nothing done (so no offset is committed past it), and a reason to wait and retry.
    assert all(done == [] and problem is not None and "dead-letter" in problem for done, problem in rounds)
    assert harness.metrics.get("dead_letters_refused") == refusals
    assert "order_events/0@7: the dead-letter topic" in caplog.text
    done, problem = source._process(consumer, [bad_record()])
    assert problem is None and done == [bad_record()]
    assert consumer.dead_lettered == [bad_record()]
    assert harness.metrics.get("events_dead_lettered") == 1


@pytest.mark.parametrize("variable", ["SAGA_KAFKA_DLQ_TOPIC", "SAGA_TOPIC_ORDER_EVENTS"])
def test_an_illegal_topic_name_stops_the_start_with_its_variable(variable: str) -> None:
    from saga.entrypoints.config import ConfigError, Settings

    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "k:9092", variable: "orders events!"})
