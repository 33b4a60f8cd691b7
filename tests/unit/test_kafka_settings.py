"""Kafka client settings from the environment, and the combinations refused at start."""

from __future__ import annotations

import pytest

from saga.adapters.kafka_settings import DEFAULT_TOPICS, InvalidKafkaSettings, KafkaSettings
from saga.domain.messages import Participant
from saga.entrypoints.config import ConfigError, Settings


def test_kafka_client_settings_are_read() -> None:
    kafka = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "a:9092,b:9092",
            "SAGA_KAFKA_GROUP_ID": "orchestrators",
            "SAGA_TOPIC_ORDER_COMMANDS": "orders.commands",
            "SAGA_KAFKA_DLQ_TOPIC": "dead",
            "SAGA_KAFKA_REPLICATION_FACTOR": "3",
            "SAGA_KAFKA_AUTO_OFFSET_RESET": "latest",
            "SAGA_KAFKA_SESSION_TIMEOUT_MS": "45000",
            "SAGA_KAFKA_CONNECT_TIMEOUT_MS": "2000",
            "SAGA_KAFKA_REQUEST_TIMEOUT_MS": "10000",
            "SAGA_KAFKA_DELIVERY_TIMEOUT_MS": "15000",
            "SAGA_KAFKA_RETRY_BACKOFF_MAX_MS": "5000",
        }
    ).kafka
    assert kafka.bootstrap_servers == "a:9092,b:9092" and kafka.group_id == "orchestrators"
    assert kafka.command_topic(Participant.ORDER) == "orders.commands"
    assert kafka.command_topic(Participant.USER) == "user_commands"
    assert kafka.event_topics() == ["order_events", "user_events", "payment_events", "timer_events"]
    assert kafka.dead_letter_topic == "dead" and kafka.replication_factor == 3
    assert kafka.auto_offset_reset == "latest" and kafka.session_timeout_ms == 45000
    assert (kafka.connect_timeout_ms, kafka.delivery_timeout_ms, kafka.retry_backoff_max_ms) == (2000, 15000, 5000)


def test_defaults_take_the_brokers_replication_and_start_at_the_earliest_offset() -> None:
    kafka = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092"}).kafka
    assert kafka.replication_factor == -1
    assert kafka.auto_offset_reset == "earliest"
    assert kafka.delivery_timeout_ms < 30_000  # below the outbox lease
    assert kafka.linger_ms == 0  # the relay batches; lingering would only delay each step


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SAGA_KAFKA_REPLICATION_FACTOR": "0"}, "SAGA_KAFKA_REPLICATION_FACTOR must be -1"),
        ({"SAGA_KAFKA_REPLICATION_FACTOR": "-2"}, "SAGA_KAFKA_REPLICATION_FACTOR must be an integer from -1"),
        (
            {"SAGA_KAFKA_SESSION_TIMEOUT_MS": "2000", "SAGA_KAFKA_HEARTBEAT_INTERVAL_MS": "2000"},
            "HEARTBEAT_INTERVAL_MS must be below",
        ),
        ({"SAGA_KAFKA_FETCH_MAX_WAIT_MS": "20000"}, "FETCH_MAX_WAIT_MS must be below"),
        ({"SAGA_KAFKA_DELIVERY_TIMEOUT_MS": "15000"}, "DELIVERY_TIMEOUT_MS must be above"),
        ({"SAGA_KAFKA_AUTO_OFFSET_RESET": "newest"}, "SAGA_KAFKA_AUTO_OFFSET_RESET must be one of earliest, latest"),
        ({"SAGA_KAFKA_CONNECT_TIMEOUT_MS": "0"}, "SAGA_KAFKA_CONNECT_TIMEOUT_MS must be an integer from 1"),
        ({"SAGA_KAFKA_SESSION_TIMEOUT_MS": "1e99"}, "SAGA_KAFKA_SESSION_TIMEOUT_MS must be an integer from 1"),
        ({"SAGA_KAFKA_CONSUMERS": "65"}, "SAGA_KAFKA_CONSUMERS must be an integer from 1 to 64"),
        ({"SAGA_KAFKA_GROUP_ID": "   "}, None),  # blank counts as unset: the default group
        ({"KAFKA_BOOTSTRAP_SERVERS": "kafka"}, "KAFKA_BOOTSTRAP_SERVERS must be comma-separated host:port pairs"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "a:1,,b:2"}, "KAFKA_BOOTSTRAP_SERVERS must be comma-separated"),
    ],
)
def test_impossible_kafka_settings_stop_the_start(environ: dict[str, str], message: str | None) -> None:
    if message is None:
        Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", **environ})
        return
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", **environ})


def test_kafka_settings_name_their_fields_and_the_environment_names_the_variables() -> None:
    with pytest.raises(InvalidKafkaSettings, match=r"^heartbeat_interval_ms must be below session_timeout_ms$"):
        KafkaSettings(session_timeout_ms=1000, heartbeat_interval_ms=1000)
    with pytest.raises(InvalidKafkaSettings, match=r"^topics.order_events must be"):
        KafkaSettings(topics={**DEFAULT_TOPICS, "order_events": "a b"})
    with pytest.raises(ConfigError, match=r"^SAGA_TOPIC_ORDER_EVENTS must be 1-249 of .*, got 'a b'$"):
        Settings.from_env({"SAGA_TOPIC_ORDER_EVENTS": "a b"})


def test_each_process_runs_as_many_event_consumers_as_configured() -> None:
    from saga.entrypoints.container import Container
    from saga.entrypoints.kafka_events import KafkaEventSource

    settings = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "SAGA_KAFKA_CONSUMERS": "3"})
    sources = Container(settings=settings).event_sources()
    assert len(sources) == 3 and all(isinstance(source, KafkaEventSource) for source in sources)
    assert len({id(source) for source in sources}) == 3  # each with its own consumer and state
