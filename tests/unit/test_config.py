"""Settings from the environment: defaults, the seed's variable names, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest

from saga.domain.messages import Participant
from saga.entrypoints.config import ConfigError, Settings


def test_defaults_run_on_a_fresh_machine() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite:///saga.db"
    assert settings.transport == "memory"
    assert settings.port == 3101
    assert settings.policy.step_deadline == timedelta(seconds=30)


def test_kafka_is_the_default_transport_when_brokers_are_given() -> None:
    settings = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092"})
    assert settings.transport == "kafka"
    assert settings.kafka.bootstrap_servers == "kafka:9092"


def test_seed_variables_are_read() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://postgres:postgres@postgres:5432/create_order_saga_db",
            "SAGA_TRANSPORT": "http",
            "USER_SERVICE_URL": "http://user-service:3001",
            "ORDER_SERVICE_URL": "http://order-service:3002/",
            "PAYMENT_SERVICE_URL": "http://payment-service:3003",
            "SCHEDULER_SERVICE_URL": "http://timer-service:3005",
            "SAGA_STEP_DEADLINE_SECONDS": "2.5",
            "SAGA_STEP_RESENDS": "0",
        }
    )
    assert settings.http.service_urls[Participant.ORDER] == "http://order-service:3002"
    assert settings.http.service_urls[Participant.TIMER] == "http://timer-service:3005"
    assert settings.policy.step_deadline == timedelta(seconds=2.5)
    assert settings.policy.step_resends == 0


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SAGA_TRANSPORT": "carrier-pigeon"}, "SAGA_TRANSPORT must be one of memory, kafka, http"),
        ({"SAGA_TRANSPORT": "kafka"}, "needs KAFKA_BOOTSTRAP_SERVERS"),
        ({"SAGA_TRANSPORT": "http", "ORDER_SERVICE_URL": "http://o"}, "needs USER_SERVICE_URL"),
        ({"ORDER_SERVICE_URL": "order-service:3002"}, "ORDER_SERVICE_URL must be an http"),
        ({"PORT": "eighty"}, "PORT must be an integer"),
        ({"PORT": "70000"}, "PORT must be between 1 and 65535"),
        ({"SAGA_STEP_DEADLINE_SECONDS": "-1"}, "invalid saga policy"),
        ({"SAGA_STEP_DEADLINE_SECONDS": "nan"}, "invalid saga policy"),
        ({"SAGA_COMPENSATION_ATTEMPTS": "0"}, "invalid saga policy"),
        ({"SAGA_SIMULATE_FAIL_STEP": "PAY"}, "SAGA_SIMULATE_FAIL_STEP must be one of"),
        ({"SAGA_LOG_LEVEL": "LOUD"}, "SAGA_LOG_LEVEL must be one of"),
    ],
)
def test_invalid_settings_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(environ)


def test_invalid_configuration_stops_the_cli_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "saga.entrypoints.cli", "serve"],
        env={"SAGA_TRANSPORT": "carrier-pigeon", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "saga: configuration error: SAGA_TRANSPORT must be one of memory, kafka, http, got 'carrier-pigeon'"
    ]
