"""Kafka connection, topic and consumer settings, as the Kafka adapters read them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from saga.domain.messages import Participant

DEFAULT_TOPICS = {
    "order_commands": "order_commands",
    "user_commands": "user_commands",
    "payment_commands": "payment_commands",
    "timer_commands": "timer_commands",
    "order_events": "order_events",
    "user_events": "user_events",
    "payment_events": "payment_events",
    "timer_events": "timer_events",
}


LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")
# host:port, the host a name, an IPv4 address or a bracketed IPv6 address.
BOOTSTRAP_SERVER = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}")


class InvalidKafkaSettings(ValueError):
    """Kafka settings the client would refuse; the message names the fields (`session_timeout_ms`)."""


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = "localhost:9092"
    group_id: str = "create-order-saga-orchestrator"
    topics: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TOPICS))
    dead_letter_topic: str = "create_order_saga_dlq"
    partitions: int = 4
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    fetch_max_wait_ms: int = 100
    max_poll_records: int = 500
    consumers: int = 1
    """Event consumers (group members) per process: each applies its partitions' events in its
    own thread, so one saga's database round trips overlap another's."""
    replication_factor: int = -1
    """Replicas of each created topic; -1 takes the broker's default.replication.factor."""
    auto_offset_reset: str = "earliest"
    """Where a new consumer group starts: earliest, so events sent before its first join are not skipped."""
    connect_timeout_ms: int = 5_000
    """How long one connection attempt or metadata wait may take before the broker counts as unreachable."""
    request_timeout_ms: int = 15_000
    delivery_timeout_ms: int = 20_000
    """How long a publish waits for the broker's acknowledgement; below the outbox lease (30 s)."""
    linger_ms: int = 0
    """The relay already hands the producer whole batches; lingering only delays each step."""
    retry_backoff_max_ms: int = 10_000
    """Longest pause between attempts while the broker or the database cannot be reached."""
    event_participants: tuple[Participant, ...] = tuple(Participant)
    """Whose event topics are consumed: the participants reached over Kafka."""

    def __post_init__(self) -> None:
        """Raises InvalidKafkaSettings, naming the fields, for values the client would refuse."""
        servers = self.bootstrap_servers.split(",")
        if not all(BOOTSTRAP_SERVER.fullmatch(server.strip()) for server in servers):
            raise InvalidKafkaSettings(
                f"bootstrap_servers must be comma-separated host:port pairs, got {self.bootstrap_servers!r}"
            )
        if not self.group_id.strip():
            raise InvalidKafkaSettings("group_id must not be empty")
        for name, topic in self.topics.items():
            if not LEGAL_TOPIC.fullmatch(topic):
                raise InvalidKafkaSettings(f"topics.{name} must be 1-249 of [a-zA-Z0-9._-], got {topic!r}")
        if not LEGAL_TOPIC.fullmatch(self.dead_letter_topic):
            raise InvalidKafkaSettings(
                f"dead_letter_topic must be 1-249 of [a-zA-Z0-9._-], got {self.dead_letter_topic!r}"
            )
        # kafka-python refuses these combinations only when a client is built, which
        # would be a retry loop at run time instead of one clear line at start.
        if self.replication_factor == 0:
            raise InvalidKafkaSettings("replication_factor must be -1 (broker default) or at least 1")
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise InvalidKafkaSettings("heartbeat_interval_ms must be below session_timeout_ms")
        if self.fetch_max_wait_ms >= self.request_timeout_ms:
            raise InvalidKafkaSettings("fetch_max_wait_ms must be below request_timeout_ms")
        if self.delivery_timeout_ms <= self.linger_ms + self.request_timeout_ms:
            raise InvalidKafkaSettings("delivery_timeout_ms must be above request_timeout_ms plus linger_ms")

    def command_topic(self, participant: Participant) -> str:
        return self.topics[f"{participant.value}_commands"]

    def event_topics(self) -> list[str]:
        return [self.topics[f"{participant.value}_events"] for participant in self.event_participants]
