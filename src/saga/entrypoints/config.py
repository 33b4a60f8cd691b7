"""Every setting `saga` reads from the environment, declared once: name, default, bounds, meaning.

`Environment` is the list: each field is one variable (its name in capitals), with its
default, the values it accepts and what it means. `Settings` is what the program reads,
built from it by `Settings.from_env`. The settings objects (`SagaPolicy`, `KafkaSettings`)
raise errors naming their fields; this layer names the variable instead, so an invalid
value becomes ConfigError whose message is the one line the operator reads.

`python -m saga.entrypoints.config` prints the README's configuration table.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from saga.adapters.kafka_settings import DEFAULT_TOPICS, InvalidKafkaSettings, KafkaSettings
from saga.adapters.simulated_participants import SIMULATABLE_ACTIONS
from saga.domain.messages import Participant
from saga.domain.money import OrderLimits
from saga.domain.policy import (
    LONGEST_BACKOFF,
    LONGEST_WAIT,
    MOST_COMPENSATION_ATTEMPTS,
    MOST_STEP_RESENDS,
    SagaPolicy,
)

__all__ = ["DEFAULT_TOPICS", "ConfigError", "Environment", "HttpSettings", "KafkaSettings", "Settings"]

TRANSPORTS = ("memory", "kafka", "http")
HTTP_URL_VARIABLES = ("ORDER_SERVICE_URL", "USER_SERVICE_URL", "PAYMENT_SERVICE_URL", "SCHEDULER_SERVICE_URL")
SQL_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql", "postgres", "postgresql+psycopg2")

HOUR = 3600.0
DAY = 24 * HOUR
LONGEST_WAIT_SECONDS = LONGEST_WAIT.total_seconds()
LONGEST_BACKOFF_SECONDS = LONGEST_BACKOFF.total_seconds()
TEN_YEARS_HOURS = 10 * 365 * 24.0
KAFKA_MS = 3_600_000  # an hour: past any sensible Kafka client timeout


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


def setting(default: Any, meaning: str, accepts: str | None = None, **bounds: float) -> Any:
    """One variable's declaration: default, meaning, and bounds (`ge`, `gt`, `le`) or, for
    text checked by a validator, `accepts` saying in words what it takes."""
    extra: dict[str, Any] | None = {"accepts": accepts} if accepts else None
    return Field(default, description=meaning, json_schema_extra=extra, **bounds)  # type: ignore[call-overload]


class Environment(BaseSettings):
    """The environment variables, in the order the README lists them."""

    model_config = SettingsConfigDict(
        case_sensitive=False, env_ignore_empty=True, extra="ignore", str_strip_whitespace=True, allow_inf_nan=False
    )

    # Where and how the service runs.
    database_url: str = setting(
        "sqlite:///saga.db",
        "SQLAlchemy URL; `postgresql://...` uses psycopg2; `memory://` keeps everything in memory",
        accepts="`postgresql://...`, `sqlite:///path` in an existing directory, or `memory://`",
    )
    saga_transport: Literal["memory", "kafka", "http"] | None = setting(
        None, "`kafka` when `KAFKA_BOOTSTRAP_SERVERS` is set, else `memory`"
    )
    port: int = setting(3101, "where `saga serve` listens", ge=1, le=65535)
    saga_host: str = setting("127.0.0.1", "the interface `saga serve` binds", accepts="a host name or address")
    saga_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = setting("INFO", "least severity logged")
    saga_log_format: Literal["text", "json"] = setting(
        "text",
        "`json`: one JSON object per line (`time`, `level`, `logger`, `message`, and `saga_id`, `step`, `message_id`, `trace_id` where they apply)",
    )
    saga_max_body_bytes: int = setting(64 * 1024, "largest request body", ge=256, le=16 * 1024 * 1024)
    saga_body_read_timeout_seconds: float = setting(
        10.0, "how long a request body may take to arrive before a 408", gt=0, le=HOUR
    )
    saga_events_token: str | None = setting(
        None,
        "bearer token required by `POST /api/events`; set it whenever the API is reachable beyond loopback, "
        "or anyone who reaches it can post participants' replies (`saga serve` warns at start)",
        accepts="any text; unset: no token required",
    )
    saga_admin_token: str | None = setting(
        None,
        "bearer token required by `POST /api/sagas/{id}/cancel` and `.../retry`; set it whenever the API "
        "is reachable beyond loopback (`saga serve` warns at start)",
        accepts="any text; unset: no token required",
    )
    saga_currency: str = setting(
        "USD", "currency when `order_details.currency` is absent", accepts="three ASCII letters"
    )
    saga_payment_return_url: str | None = setting(
        None,
        "`return_url` sent in `authorize_payment` for the payment service; unset: none sent",
        accepts="an http(s) URL",
    )
    saga_simulate_fail_step: str | None = setting(
        None,
        "make simulated steps or compensations fail (in-memory transport), several separated by commas",
        accepts=", ".join(f"`{action}`" for action in SIMULATABLE_ACTIONS),
    )

    # Intake limits (OrderLimits); the platform's services take total and fee at most
    # 999.99, a customer_id of at most 36 characters, and need deliveryLocation.
    saga_max_order_total: Decimal | None = setting(
        None, "largest order total, fee included; unset: no bound beyond prices and quantities", gt=0, le=10**12
    )
    saga_max_delivery_fee: Decimal = setting(Decimal(1000), "largest `deliveryFee`", ge=0, le=10**12)
    saga_max_customer_id_length: int = setting(200, "longest `customer_id`, in characters", ge=1, le=10_000)
    saga_required_order_fields: str | None = setting(
        None,
        "fields `order_details` must carry besides `foodItems`",
        accepts="comma-separated field names, e.g. `deliveryLocation`",
    )

    # The saga's timing rules (SagaPolicy).
    saga_step_deadline_seconds: float = setting(
        30.0, "wait for a step's reply before re-sending", gt=0, le=LONGEST_WAIT_SECONDS
    )
    saga_step_resends: int = setting(3, "re-sends before the step counts as failed", ge=0, le=MOST_STEP_RESENDS)
    saga_compensation_attempts: int = setting(
        5, "sends of a compensation before `COMPENSATION_FAILED`", ge=1, le=MOST_COMPENSATION_ATTEMPTS
    )
    saga_compensation_backoff_seconds: float = setting(
        1.0, "wait before re-sending a rejected compensation, doubling each time", ge=0, le=LONGEST_BACKOFF_SECONDS
    )
    saga_compensation_backoff_max_seconds: float = setting(
        600.0, "the longest wait between two sends of a rejected compensation", ge=0, le=LONGEST_BACKOFF_SECONDS
    )
    saga_order_timer_minutes: float = setting(
        30.0, "the runner-acceptance timer (`timeout_at`)", gt=0, le=LONGEST_WAIT_SECONDS / 60
    )

    # The HTTP transport.
    order_service_url: str | None = setting(
        None, "the order service's base URL (HTTP transport)", accepts="an http(s) URL"
    )
    user_service_url: str | None = setting(
        None, "the user service's base URL (HTTP transport)", accepts="an http(s) URL"
    )
    payment_service_url: str | None = setting(
        None, "the payment service's base URL (HTTP transport)", accepts="an http(s) URL"
    )
    scheduler_service_url: str | None = setting(
        None, "the timer service's base URL (HTTP transport)", accepts="an http(s) URL"
    )
    saga_http_connect_timeout_seconds: float = setting(
        2.0, "how long a command's connection to a participant may take", ge=0.001, le=300
    )
    saga_http_read_timeout_seconds: float = setting(
        10.0, "how long a participant may take to answer a command", ge=0.001, le=HOUR
    )

    # Transport per participant (docs/contract.md, "Transport per participant").
    saga_transport_order: Literal["kafka", "http"] | None = setting(
        None, "the order service's transport; unset: `SAGA_TRANSPORT`"
    )
    saga_transport_user: Literal["kafka", "http"] | None = setting(
        None, "the user service's transport; unset: `SAGA_TRANSPORT`"
    )
    saga_transport_payment: Literal["kafka", "http"] | None = setting(
        None, "the payment service's transport; unset: `SAGA_TRANSPORT`"
    )
    saga_transport_timer: Literal["kafka", "http", "timer-api"] | None = setting(
        None,
        "the timer's transport; `timer-api` is its own `POST {SCHEDULER_SERVICE_URL}/StartTimer`; "
        "unset: `SAGA_TRANSPORT`",
    )

    # The Kafka transport (docs/kafka.md says more).
    kafka_bootstrap_servers: str | None = setting(
        None, "Kafka brokers; setting it makes Kafka the transport", accepts="comma-separated `host:port`"
    )
    saga_kafka_group_id: str = setting(
        "create-order-saga-orchestrator",
        "the orchestrator's consumer group, the same for every process of one system",
        accepts="non-empty text",
    )
    saga_topic_order_commands: str = setting("order_commands", "topic of the order service's commands", accepts="topic")
    saga_topic_user_commands: str = setting("user_commands", "topic of the user service's commands", accepts="topic")
    saga_topic_payment_commands: str = setting(
        "payment_commands", "topic of the payment service's commands", accepts="topic"
    )
    saga_topic_timer_commands: str = setting("timer_commands", "topic of the timer service's commands", accepts="topic")
    saga_topic_order_events: str = setting("order_events", "topic of the order service's events", accepts="topic")
    saga_topic_user_events: str = setting("user_events", "topic of the user service's events", accepts="topic")
    saga_topic_payment_events: str = setting("payment_events", "topic of the payment service's events", accepts="topic")
    saga_topic_timer_events: str = setting("timer_events", "topic of the timer service's events", accepts="topic")
    saga_kafka_dlq_topic: str = setting("create_order_saga_dlq", "dead-letter topic", accepts="topic")
    saga_kafka_partitions: int = setting(4, "partitions of the topics created at start", ge=1, le=10_000)
    saga_kafka_replication_factor: int = setting(
        -1, "replicas of created topics; `-1` takes the broker's default (0 is refused)", ge=-1, le=32_767
    )
    saga_kafka_auto_offset_reset: Literal["earliest", "latest"] = setting(
        "earliest", "where a consumer group without committed offsets starts"
    )
    saga_kafka_session_timeout_ms: int = setting(
        10_000, "consumer session timeout (45000 recommended against Apache Kafka)", ge=1, le=KAFKA_MS
    )
    saga_kafka_heartbeat_interval_ms: int = setting(
        3_000, "consumer heartbeat, below the session timeout", ge=1, le=KAFKA_MS
    )
    saga_kafka_fetch_max_wait_ms: int = setting(
        100, "how long a fetch waits for data, below the request timeout", ge=0, le=KAFKA_MS
    )
    saga_kafka_max_poll_records: int = setting(500, "records per poll", ge=1, le=100_000)
    saga_kafka_consumers: int = setting(1, "event consumers (group members) per process", ge=1, le=64)
    saga_kafka_connect_timeout_ms: int = setting(
        5_000, "one connection attempt before the broker counts as unreachable", ge=1, le=KAFKA_MS
    )
    saga_kafka_request_timeout_ms: int = setting(15_000, "one request to the broker", ge=1, le=KAFKA_MS)
    saga_kafka_delivery_timeout_ms: int = setting(
        20_000,
        "how long a publish waits for the broker's acknowledgement; above the request timeout plus linger",
        ge=1,
        le=KAFKA_MS,
    )
    saga_kafka_linger_ms: int = setting(0, "how long the producer gathers records into one batch", ge=0, le=60_000)
    saga_kafka_retry_backoff_max_ms: int = setting(
        10_000, "longest pause between reconnection attempts to the broker", ge=1, le=KAFKA_MS
    )
    saga_kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = setting(
        "PLAINTEXT", "how every Kafka client connects: `SSL` is TLS, `SASL_SSL` SASL over TLS (docs/kafka.md)"
    )
    saga_kafka_ssl_cafile: str | None = setting(
        None,
        "CA certificate(s) the brokers' certificates are checked against",
        accepts="a readable PEM file; unset: the system's CAs",
    )
    saga_kafka_ssl_certfile: str | None = setting(
        None, "client certificate, for brokers that require one (mutual TLS)", accepts="a readable PEM file"
    )
    saga_kafka_ssl_keyfile: str | None = setting(
        None, "private key of `SAGA_KAFKA_SSL_CERTFILE`", accepts="a readable PEM file"
    )
    saga_kafka_ssl_password: str | None = setting(
        None, "password of an encrypted `SAGA_KAFKA_SSL_KEYFILE`", accepts="any text"
    )
    saga_kafka_ssl_check_hostname: bool = setting(
        True, "check that the broker's certificate names the host connected to", accepts="`true` or `false`"
    )
    saga_kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = setting(
        None, "SASL mechanism, required with the `SASL_*` protocols"
    )
    saga_kafka_sasl_username: str | None = setting(None, "SASL user name", accepts="any text")
    saga_kafka_sasl_password: str | None = setting(None, "SASL password", accepts="any text")

    # Background work.
    saga_relay_poll_seconds: float = setting(
        1.0,
        "how often the relay looks in the outbox for commands no process handed over itself; on PostgreSQL,"
        " commands written by a process without a relay wake it at once (LISTEN/NOTIFY)",
        ge=0.001,
        le=HOUR,
    )
    saga_sweep_interval_seconds: float = setting(1.0, "deadline sweep period", ge=0.001, le=HOUR)
    saga_dispatch_hold_seconds: float = setting(
        5.0, "other relays leave a process's own fresh commands alone this long", ge=0, le=HOUR
    )
    saga_outbox_retention_hours: float = setting(
        24.0, "how long sent commands are kept before deletion", ge=0, le=TEN_YEARS_HOURS
    )
    saga_inbox_retention_hours: float = setting(
        168.0, "how long consumed message ids are kept before deletion", ge=0, le=TEN_YEARS_HOURS
    )
    saga_retention_interval_seconds: float = setting(
        300.0, "how often the worker deletes what is past retention", ge=0.001, le=DAY
    )
    saga_retry_max_seconds: float = setting(
        5.0,
        "the longest pause between attempts of a background loop, or of the migration at start, "
        "while the database cannot be reached",
        ge=0.01,
        le=300,
    )

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, url: str) -> str:
        if url.startswith("memory:"):
            return url
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ValueError("must be a URL such as postgresql://user:password@host/db or sqlite:///saga.db") from None
        shown = parsed.render_as_string(hide_password=True)
        if parsed.drivername not in SQL_DRIVERS:
            raise ValueError(f"must name PostgreSQL (postgresql://) or SQLite (sqlite:///path), got {shown!r}")
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            directory = Path(parsed.database).expanduser().resolve().parent
            if not directory.is_dir():
                raise ValueError(f"names a SQLite file in a directory that does not exist ({directory})")
        return url

    @field_validator("order_service_url", "user_service_url", "payment_service_url", "scheduler_service_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL, got {url!r}")
        return url.rstrip("/") if url else None

    @field_validator("saga_payment_return_url")
    @classmethod
    def _return_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL, got {url!r}")
        return url

    @field_validator("saga_simulate_fail_step")
    @classmethod
    def _simulated_action(cls, names: str | None) -> str | None:
        for name in [] if names is None else names.split(","):
            if name.strip() not in SIMULATABLE_ACTIONS:
                raise ValueError(f"must be one or more of {', '.join(SIMULATABLE_ACTIONS)}, got {name!r}")
        return names

    @field_validator("saga_currency")
    @classmethod
    def _currency(cls, code: str) -> str:
        if not re.fullmatch(r"[A-Za-z]{3}", code):
            raise ValueError(f"must be three ASCII letters, got {code!r}")
        return code.upper()

    @model_validator(mode="after")
    def _transport_has_its_addresses(self) -> Environment:
        if self.saga_transport == "kafka" and not self.kafka_bootstrap_servers:
            raise ValueError("SAGA_TRANSPORT=kafka needs KAFKA_BOOTSTRAP_SERVERS")
        chosen = {participant: route for participant, route in self._chosen_routes().items() if route}
        if chosen and self.transport == "memory":
            names = ", ".join(f"SAGA_TRANSPORT_{participant.value.upper()}" for participant in chosen)
            raise ValueError(f"{names} cannot be mixed with the in-memory transport; set SAGA_TRANSPORT")
        routes = self.routes()
        if self.saga_transport == "http" or any(route in ("http", "timer-api") for route in routes.values()):
            missing = [
                name
                for name, participant in zip(HTTP_URL_VARIABLES, Participant, strict=True)
                if routes[participant] in ("http", "timer-api") and not getattr(self, name.lower())
            ]
            if missing:
                over = "SAGA_TRANSPORT=http" if not chosen else "the participants' HTTP transports"
                raise ValueError(f"{over} needs {', '.join(missing)}")
        if any(route == "kafka" for route in routes.values()) and not self.kafka_bootstrap_servers:
            raise ValueError("a participant on kafka (SAGA_TRANSPORT_*) needs KAFKA_BOOTSTRAP_SERVERS")
        return self

    def _chosen_routes(self) -> dict[Participant, str | None]:
        return {
            Participant.ORDER: self.saga_transport_order,
            Participant.USER: self.saga_transport_user,
            Participant.PAYMENT: self.saga_transport_payment,
            Participant.TIMER: self.saga_transport_timer,
        }

    def routes(self) -> dict[Participant, str]:
        """Each participant's transport: its own SAGA_TRANSPORT_*, else SAGA_TRANSPORT."""
        return {participant: route or self.transport for participant, route in self._chosen_routes().items()}

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> Environment:
        """The variables from `environ`, validated. Raises ConfigError naming the first bad one."""
        try:
            return cls.model_validate(_MappingSource(cls, environ)())
        except ValidationError as invalid:
            raise ConfigError(_explain(invalid)) from None

    @property
    def transport(self) -> str:
        return self.saga_transport or ("kafka" if self.kafka_bootstrap_servers else "memory")

    def policy(self) -> SagaPolicy:
        return SagaPolicy(
            step_deadline=timedelta(seconds=self.saga_step_deadline_seconds),
            step_resends=self.saga_step_resends,
            compensation_attempts=self.saga_compensation_attempts,
            compensation_backoff=timedelta(seconds=self.saga_compensation_backoff_seconds),
            compensation_backoff_max=timedelta(seconds=self.saga_compensation_backoff_max_seconds),
            order_timer=timedelta(minutes=self.saga_order_timer_minutes),
            default_currency=self.saga_currency,
            payment_return_url=self.saga_payment_return_url,
        )

    def limits(self) -> OrderLimits:
        required = (self.saga_required_order_fields or "").split(",")
        return OrderLimits(
            max_delivery_fee=self.saga_max_delivery_fee,
            max_total=self.saga_max_order_total,
            max_customer_id_length=self.saga_max_customer_id_length,
            required_order_fields=tuple(name.strip() for name in required if name.strip()),
        )

    def kafka(self) -> KafkaSettings:
        """Raises ConfigError naming the variables when the combination is one Kafka refuses."""
        try:
            return KafkaSettings(
                bootstrap_servers=self.kafka_bootstrap_servers or "localhost:9092",
                group_id=self.saga_kafka_group_id,
                topics={name: getattr(self, f"saga_topic_{name}") for name in DEFAULT_TOPICS},
                dead_letter_topic=self.saga_kafka_dlq_topic,
                partitions=self.saga_kafka_partitions,
                session_timeout_ms=self.saga_kafka_session_timeout_ms,
                heartbeat_interval_ms=self.saga_kafka_heartbeat_interval_ms,
                fetch_max_wait_ms=self.saga_kafka_fetch_max_wait_ms,
                max_poll_records=self.saga_kafka_max_poll_records,
                consumers=self.saga_kafka_consumers,
                replication_factor=self.saga_kafka_replication_factor,
                auto_offset_reset=self.saga_kafka_auto_offset_reset,
                connect_timeout_ms=self.saga_kafka_connect_timeout_ms,
                request_timeout_ms=self.saga_kafka_request_timeout_ms,
                delivery_timeout_ms=self.saga_kafka_delivery_timeout_ms,
                linger_ms=self.saga_kafka_linger_ms,
                retry_backoff_max_ms=self.saga_kafka_retry_backoff_max_ms,
                security_protocol=self.saga_kafka_security_protocol,
                ssl_cafile=self.saga_kafka_ssl_cafile,
                ssl_certfile=self.saga_kafka_ssl_certfile,
                ssl_keyfile=self.saga_kafka_ssl_keyfile,
                ssl_password=self.saga_kafka_ssl_password,
                ssl_check_hostname=self.saga_kafka_ssl_check_hostname,
                sasl_mechanism=self.saga_kafka_sasl_mechanism,
                sasl_username=self.saga_kafka_sasl_username,
                sasl_password=self.saga_kafka_sasl_password,
            )
        except InvalidKafkaSettings as invalid:
            raise ConfigError(_name_variables(str(invalid), KAFKA_VARIABLES)) from None


KAFKA_VARIABLES = {
    "bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
    "dead_letter_topic": "SAGA_KAFKA_DLQ_TOPIC",
    **{f"topics.{name}": f"SAGA_TOPIC_{name.upper()}" for name in DEFAULT_TOPICS},
    **{
        name: f"SAGA_KAFKA_{name.upper()}"
        for name in KafkaSettings.__dataclass_fields__
        if name not in ("bootstrap_servers", "dead_letter_topic", "topics")
    },
}
"""KafkaSettings' field names and the variables they come from."""


@dataclass(frozen=True)
class HttpSettings:
    service_urls: Mapping[Participant, str] = field(default_factory=dict)
    connect_timeout: float = 2.0
    read_timeout: float = 10.0
    events_token: str | None = None
    admin_token: str | None = None


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
    body_read_timeout_seconds: float = 10.0
    limits: OrderLimits = field(default_factory=OrderLimits)
    relay_poll_seconds: float = 1.0
    dispatch_hold_seconds: float = 5.0
    sweep_interval_seconds: float = 1.0
    outbox_retention_hours: float = 24.0
    inbox_retention_hours: float = 168.0
    retention_interval_seconds: float = 300.0
    log_level: str = "INFO"
    routes: Mapping[Participant, str] = field(default_factory=dict)
    """Each participant's transport (kafka, http, timer-api) where it differs from `transport`."""
    retry_max_seconds: float = 5.0
    log_format: str = "text"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings from `environ` (default: the process's). Raises ConfigError naming the variable."""
        env = Environment.read(os.environ if environ is None else environ)
        return cls(
            database_url=env.database_url,
            transport=env.transport,
            host=env.saga_host,
            port=env.port,
            policy=env.policy(),
            kafka=replace(
                env.kafka(),
                event_participants=tuple(p for p, route in env.routes().items() if route in ("kafka", "memory")),
            ),
            routes=env.routes(),
            http=HttpSettings(
                service_urls={
                    participant: url
                    for participant, url in {
                        Participant.ORDER: env.order_service_url,
                        Participant.USER: env.user_service_url,
                        Participant.PAYMENT: env.payment_service_url,
                        Participant.TIMER: env.scheduler_service_url,
                    }.items()
                    if url
                },
                connect_timeout=env.saga_http_connect_timeout_seconds,
                read_timeout=env.saga_http_read_timeout_seconds,
                events_token=env.saga_events_token,
                admin_token=env.saga_admin_token,
            ),
            simulate_fail_step=env.saga_simulate_fail_step,
            max_body_bytes=env.saga_max_body_bytes,
            body_read_timeout_seconds=env.saga_body_read_timeout_seconds,
            limits=env.limits(),
            relay_poll_seconds=env.saga_relay_poll_seconds,
            dispatch_hold_seconds=env.saga_dispatch_hold_seconds,
            sweep_interval_seconds=env.saga_sweep_interval_seconds,
            outbox_retention_hours=env.saga_outbox_retention_hours,
            inbox_retention_hours=env.saga_inbox_retention_hours,
            retention_interval_seconds=env.saga_retention_interval_seconds,
            log_level=env.saga_log_level,
            retry_max_seconds=env.saga_retry_max_seconds,
            log_format=env.saga_log_format,
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

    def route(self, participant: Participant) -> str:
        """The transport that carries this participant's commands."""
        return self.routes.get(participant, self.transport)

    @property
    def routed(self) -> bool:
        """Whether the participants' transports differ (the platform's mix: Kafka, and the timer's API)."""
        return any(self.route(participant) != self.transport for participant in Participant)

    @property
    def uses_sql(self) -> bool:
        return not self.database_url.startswith("memory:")


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of os.environ;
    a variable set to blanks counts as unset."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._given = {name: value for name, value in environ.items() if value.strip()}
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._given, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


def accepts(info: FieldInfo) -> str:
    """What a variable accepts, in words: "an integer from 1 to 65535", "one of ...", ..."""
    extra = info.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("accepts"), str):
        return str(extra["accepts"])
    choices = _choices(info.annotation)
    if choices:
        return "one of " + ", ".join(choices)
    noun = "an integer" if info.annotation is int else "a number"
    low = high = None
    low_word = ""
    for bound in info.metadata:
        for name, word in (("ge", "from"), ("gt", "above")):
            if getattr(bound, name, None) is not None:
                low, low_word = getattr(bound, name), word
        if getattr(bound, "le", None) is not None:
            high = bound.le
    if low is not None and high is not None:
        joiner = "to" if low_word == "from" else "and at most"
        return f"{noun} {low_word} {_number(low)} {joiner} {_number(high)}"
    if low is not None:
        return f"{noun} {'at least' if low_word == 'from' else 'above'} {_number(low)}"
    return noun


def _choices(annotation: Any) -> list[str]:
    args = getattr(annotation, "__args__", ())
    if getattr(annotation, "__origin__", None) is Literal:
        return [str(arg) for arg in args]
    for arg in args:  # Optional[Literal[...]]
        if getattr(arg, "__origin__", None) is Literal:
            return [str(choice) for choice in arg.__args__]
    return []


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _explain(invalid: ValidationError) -> str:
    """The first error as one line naming the variable."""
    error = invalid.errors()[0]
    if not error["loc"]:  # a model validator: its message names the variables itself
        return str(error.get("ctx", {}).get("error", error["msg"]))
    name = str(error["loc"][0])
    variable = name.upper()
    if error["type"] == "value_error":
        return f"{variable} {error['ctx']['error']}"
    return f"{variable} must be {accepts(Environment.model_fields[name])}, got {error['input']!r}"


def _name_variables(message: str, variables: Mapping[str, str]) -> str:
    """Replaces the field names in a settings object's message by the variables they come from."""
    words, got, value = message.partition(", got ")  # the value itself is left as it is
    return re.sub(r"[a-z_][a-z_.]*", lambda word: variables.get(word[0], word[0]), words) + got + value


def markdown_table() -> str:
    """The README's configuration table, from the declarations above."""
    lines = ["| variable | default | accepts | meaning |", "| --- | --- | --- | --- |"]
    for name, info in Environment.model_fields.items():
        default = "" if info.default is None else f"`{_number(info.default)}`"
        lines.append(f"| `{name.upper()}` | {default} | {accepts(info)} | {info.description} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(markdown_table() + "\n")
