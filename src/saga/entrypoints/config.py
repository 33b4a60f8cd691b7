"""Settings from the environment, with the seed's variable names, checked at start.

An invalid value raises ConfigError whose message is the one line the operator reads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from saga.adapters.kafka_settings import DEFAULT_TOPICS, InvalidKafkaSettings, KafkaSettings
from saga.adapters.simulated_participants import SIMULATABLE_ACTIONS
from saga.domain.messages import Participant
from saga.domain.policy import SagaPolicy

T = TypeVar("T")
TRANSPORTS = ("memory", "kafka", "http")
HTTP_URL_VARIABLES = ("ORDER_SERVICE_URL", "USER_SERVICE_URL", "PAYMENT_SERVICE_URL", "SCHEDULER_SERVICE_URL")
__all__ = ["DEFAULT_TOPICS", "ConfigError", "HttpSettings", "KafkaSettings", "Settings"]


class ConfigError(ValueError):
    """A setting is missing or invalid."""


@dataclass(frozen=True)
class HttpSettings:
    service_urls: Mapping[Participant, str] = field(default_factory=dict)
    connect_timeout: float = 2.0
    read_timeout: float = 10.0
    events_token: str | None = None


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///saga.db"
    transport: str = "memory"
    host: str = "127.0.0.1"
    port: int = 3101
    policy: SagaPolicy = field(default_factory=SagaPolicy)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    simulate_fail_step: str | None = None
    max_body_bytes: int = 64 * 1024
    relay_poll_seconds: float = 1.0
    dispatch_hold_seconds: float = 5.0
    sweep_interval_seconds: float = 1.0
    outbox_retention_hours: float = 24.0
    inbox_retention_hours: float = 168.0
    retention_interval_seconds: float = 300.0
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = Environment(os.environ if environ is None else environ)
        kafka_servers = env.text("KAFKA_BOOTSTRAP_SERVERS")
        transport = env.choice("SAGA_TRANSPORT", TRANSPORTS, "kafka" if kafka_servers else "memory")
        if transport == "kafka" and not kafka_servers:
            raise ConfigError("SAGA_TRANSPORT=kafka needs KAFKA_BOOTSTRAP_SERVERS")
        service_urls = {
            Participant.ORDER: env.text("ORDER_SERVICE_URL"),
            Participant.USER: env.text("USER_SERVICE_URL"),
            Participant.PAYMENT: env.text("PAYMENT_SERVICE_URL"),
            Participant.TIMER: env.text("SCHEDULER_SERVICE_URL"),
        }
        if transport == "http":
            missing = [name for name, url in zip(HTTP_URL_VARIABLES, service_urls.values(), strict=False) if not url]
            if missing:
                raise ConfigError(f"SAGA_TRANSPORT=http needs {', '.join(missing)}")
        for name, url in zip(HTTP_URL_VARIABLES, service_urls.values(), strict=False):
            if url and not url.startswith(("http://", "https://")):
                raise ConfigError(f"{name} must be an http:// or https:// URL, got {url!r}")
        fail_step = env.text("SAGA_SIMULATE_FAIL_STEP")
        if fail_step and fail_step not in SIMULATABLE_ACTIONS:
            raise ConfigError(
                f"SAGA_SIMULATE_FAIL_STEP must be one of {', '.join(SIMULATABLE_ACTIONS)}, got {fail_step!r}"
            )
        try:
            policy = SagaPolicy(
                step_deadline=timedelta(seconds=env.number("SAGA_STEP_DEADLINE_SECONDS", float, 30.0)),
                step_resends=env.number("SAGA_STEP_RESENDS", int, 3),
                compensation_attempts=env.number("SAGA_COMPENSATION_ATTEMPTS", int, 5),
                compensation_backoff=timedelta(seconds=env.number("SAGA_COMPENSATION_BACKOFF_SECONDS", float, 1.0)),
                order_timer=timedelta(minutes=env.number("SAGA_ORDER_TIMER_MINUTES", float, 30.0)),
                default_currency=env.text("SAGA_CURRENCY") or "USD",
            )
        except ValueError as error:
            raise ConfigError(f"invalid saga policy: {error}") from None
        topics = {name: env.text(f"SAGA_TOPIC_{name.upper()}") or default for name, default in DEFAULT_TOPICS.items()}
        try:
            kafka = KafkaSettings(
                bootstrap_servers=kafka_servers or "localhost:9092",
                group_id=env.text("SAGA_KAFKA_GROUP_ID") or "create-order-saga-orchestrator",
                topics=topics,
                dead_letter_topic=env.text("SAGA_KAFKA_DLQ_TOPIC") or "create_order_saga_dlq",
                partitions=env.number("SAGA_KAFKA_PARTITIONS", int, 4, low=1),
                session_timeout_ms=env.number("SAGA_KAFKA_SESSION_TIMEOUT_MS", int, 10_000, low=1),
                heartbeat_interval_ms=env.number("SAGA_KAFKA_HEARTBEAT_INTERVAL_MS", int, 3_000, low=1),
                fetch_max_wait_ms=env.number("SAGA_KAFKA_FETCH_MAX_WAIT_MS", int, 100, low=0),
                max_poll_records=env.number("SAGA_KAFKA_MAX_POLL_RECORDS", int, 500, low=1),
                consumers=env.number("SAGA_KAFKA_CONSUMERS", int, 1, low=1, high=64),
                replication_factor=env.number("SAGA_KAFKA_REPLICATION_FACTOR", int, -1, low=-1),
                auto_offset_reset=env.choice("SAGA_KAFKA_AUTO_OFFSET_RESET", ("earliest", "latest"), "earliest"),
                connect_timeout_ms=env.number("SAGA_KAFKA_CONNECT_TIMEOUT_MS", int, 5_000, low=1),
                request_timeout_ms=env.number("SAGA_KAFKA_REQUEST_TIMEOUT_MS", int, 15_000, low=1),
                delivery_timeout_ms=env.number("SAGA_KAFKA_DELIVERY_TIMEOUT_MS", int, 20_000, low=1),
                linger_ms=env.number("SAGA_KAFKA_LINGER_MS", int, 0, low=0),
                retry_backoff_max_ms=env.number("SAGA_KAFKA_RETRY_BACKOFF_MAX_MS", int, 10_000, low=1),
            )
        except InvalidKafkaSettings as error:
            raise ConfigError(str(error)) from None
        return cls(
            database_url=env.text("DATABASE_URL") or "sqlite:///saga.db",
            transport=transport,
            host=env.text("SAGA_HOST") or "127.0.0.1",
            port=env.number("PORT", int, 3101, low=1, high=65535),
            policy=policy,
            kafka=kafka,
            http=HttpSettings(
                service_urls={p: url.rstrip("/") for p, url in service_urls.items() if url},
                connect_timeout=env.number("SAGA_HTTP_CONNECT_TIMEOUT_SECONDS", float, 2.0, low=0.001),
                read_timeout=env.number("SAGA_HTTP_READ_TIMEOUT_SECONDS", float, 10.0, low=0.001),
                events_token=env.text("SAGA_EVENTS_TOKEN"),
            ),
            simulate_fail_step=fail_step,
            max_body_bytes=env.number("SAGA_MAX_BODY_BYTES", int, 64 * 1024, low=256),
            relay_poll_seconds=env.number("SAGA_RELAY_POLL_SECONDS", float, 1.0, low=0.001),
            dispatch_hold_seconds=env.number("SAGA_DISPATCH_HOLD_SECONDS", float, 5.0, low=0),
            sweep_interval_seconds=env.number("SAGA_SWEEP_INTERVAL_SECONDS", float, 1.0, low=0.001),
            outbox_retention_hours=env.number("SAGA_OUTBOX_RETENTION_HOURS", float, 24.0, low=0),
            inbox_retention_hours=env.number("SAGA_INBOX_RETENTION_HOURS", float, 168.0, low=0),
            retention_interval_seconds=env.number("SAGA_RETENTION_INTERVAL_SECONDS", float, 300.0, low=0.001),
            log_level=env.choice("SAGA_LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
        )

    @property
    def dispatch_hold(self) -> timedelta:
        return timedelta(seconds=self.dispatch_hold_seconds)

    @property
    def outbox_retention(self) -> timedelta:
        return timedelta(hours=self.outbox_retention_hours)

    @property
    def inbox_retention(self) -> timedelta:
        return timedelta(hours=self.inbox_retention_hours)

    @property
    def uses_sql(self) -> bool:
        return not self.database_url.startswith("memory:")


class Environment:
    """Typed reads of environment variables, each failing with the variable's name."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        return value or None

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.text(name) or default
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        return value

    def number(
        self, name: str, kind: Callable[[str], T], default: T, low: float | None = None, high: float | None = None
    ) -> T:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = kind(raw)
        except ValueError:
            noun = "an integer" if kind is int else "a number"
            raise ConfigError(f"{name} must be {noun}, got {raw!r}") from None
        number = float(value)  # type: ignore[arg-type]
        if (low is not None and number < low) or (high is not None and number > high):
            bounds = f"at least {low}" if high is None else f"between {low} and {high}"
            raise ConfigError(f"{name} must be {bounds}, got {raw!r}")
        return value
