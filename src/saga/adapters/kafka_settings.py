"""Kafka connection, topic and consumer settings, as the Kafka adapters read them."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


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
    """How long a publish waits for the broker's acknowledgement; the relay holds the commands' outbox rows meanwhile."""
    linger_ms: int = 0
    """The relay already hands the producer whole batches; lingering only delays each step."""
    retry_backoff_max_ms: int = 10_000
    """Longest pause between attempts while the broker or the database cannot be reached."""
    event_participants: tuple[Participant, ...] = tuple(Participant)
    """Whose event topics are consumed: the participants reached over Kafka."""
    security_protocol: str = "PLAINTEXT"
    """PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (SASL over TLS), for every client."""
    ssl_cafile: str | None = None
    """PEM file of the CA that signed the brokers' certificates; None trusts the system's CAs."""
    ssl_certfile: str | None = None
    """PEM client certificate, for brokers that ask for one (mutual TLS)."""
    ssl_keyfile: str | None = None
    """PEM private key of `ssl_certfile`."""
    ssl_password: str | None = None
    """Password of `ssl_keyfile`, when it is encrypted."""
    ssl_check_hostname: bool = True
    """Check that the broker's certificate names the host connected to."""
    sasl_mechanism: str | None = None
    """PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; required by the SASL protocols."""
    sasl_username: str | None = None
    sasl_password: str | None = None

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
        self._check_security()

    def _check_security(self) -> None:
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise InvalidKafkaSettings(f"security_protocol must be one of {', '.join(SECURITY_PROTOCOLS)}")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not os.access(path, os.R_OK):
                raise InvalidKafkaSettings(f"{name} must be a readable file, got {path!r}")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise InvalidKafkaSettings("ssl_certfile and ssl_keyfile must be given together")
        if self.security_protocol.startswith("SASL_"):
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise InvalidKafkaSettings(
                    f"sasl_mechanism must be one of {', '.join(SASL_MECHANISMS)} with {self.security_protocol}"
                )
            if not self.sasl_username or not self.sasl_password:
                raise InvalidKafkaSettings(
                    f"sasl_username and sasl_password are required with {self.security_protocol}"
                )
        elif self.sasl_mechanism is not None:
            raise InvalidKafkaSettings("sasl_mechanism needs security_protocol SASL_PLAINTEXT or SASL_SSL")

    def client_options(self) -> dict[str, Any]:
        """The connection security options of every kafka-python client (producer, consumer,
        admin), by kafka-python's names; empty for PLAINTEXT."""
        options: dict[str, Any] = {}
        if self.security_protocol == "PLAINTEXT":
            return options
        options["security_protocol"] = self.security_protocol
        if self.security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_check_hostname"] = self.ssl_check_hostname
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password"):
                if getattr(self, name) is not None:
                    options[name] = getattr(self, name)
        if self.security_protocol.startswith("SASL_"):
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options

    def command_topic(self, participant: Participant) -> str:
        return self.topics[f"{participant.value}_commands"]

    def event_topics(self) -> list[str]:
        return [self.topics[f"{participant.value}_events"] for participant in self.event_participants]
