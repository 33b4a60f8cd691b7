"""Settings from the environment: declared once, documented, defaults, the seed's names, one-line errors."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from saga.domain.messages import Participant
from saga.entrypoints.config import ConfigError, Environment, Settings, markdown_table

ROOT = Path(__file__).resolve().parents[2]


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
        ({"PORT": "eighty"}, "PORT must be an integer from 1 to 65535, got 'eighty'"),
        ({"PORT": "70000"}, "PORT must be an integer from 1 to 65535, got '70000'"),
        ({"SAGA_STEP_DEADLINE_SECONDS": "-1"}, "SAGA_STEP_DEADLINE_SECONDS must be a number above 0"),
        ({"SAGA_STEP_DEADLINE_SECONDS": "nan"}, "SAGA_STEP_DEADLINE_SECONDS must be a number above 0"),
        ({"SAGA_STEP_DEADLINE_SECONDS": "1e12"}, "SAGA_STEP_DEADLINE_SECONDS must be a number above 0 and at most"),
        ({"SAGA_ORDER_TIMER_MINUTES": "5e9"}, "SAGA_ORDER_TIMER_MINUTES must be a number above 0 and at most"),
        ({"SAGA_ORDER_TIMER_MINUTES": "inf"}, "SAGA_ORDER_TIMER_MINUTES must be a number"),
        ({"SAGA_COMPENSATION_ATTEMPTS": "0"}, "SAGA_COMPENSATION_ATTEMPTS must be an integer from 1 to 1000"),
        ({"SAGA_COMPENSATION_ATTEMPTS": "10000000"}, "SAGA_COMPENSATION_ATTEMPTS must be an integer from 1"),
        ({"SAGA_COMPENSATION_BACKOFF_MAX_SECONDS": "1e9"}, "SAGA_COMPENSATION_BACKOFF_MAX_SECONDS must be"),
        ({"SAGA_OUTBOX_RETENTION_HOURS": "1e300"}, "SAGA_OUTBOX_RETENTION_HOURS must be a number from 0 to"),
        ({"SAGA_HTTP_READ_TIMEOUT_SECONDS": "0"}, "SAGA_HTTP_READ_TIMEOUT_SECONDS must be a number from"),
        ({"SAGA_SIMULATE_FAIL_STEP": "PAY"}, "SAGA_SIMULATE_FAIL_STEP must be one or more of"),
        ({"SAGA_LOG_LEVEL": "LOUD"}, "SAGA_LOG_LEVEL must be one of"),
        ({"SAGA_CURRENCY": "EURO"}, "SAGA_CURRENCY must be three ASCII letters"),
        ({"DATABASE_URL": "notaurl"}, "DATABASE_URL must be a URL such as"),
        (
            {"DATABASE_URL": "mysql://root:secret@db/saga"},
            "DATABASE_URL must name PostgreSQL .* got 'mysql://root:\\*\\*\\*@db/saga'",
        ),
        ({"DATABASE_URL": "sqlite:////nonexistent/dir/x.db"}, "DATABASE_URL names a SQLite file in a directory that"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "garbage"}, "KAFKA_BOOTSTRAP_SERVERS must be comma-separated host:port"),
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


@pytest.mark.parametrize(
    "environ",
    [
        {"DATABASE_URL": "memory://"},
        {"DATABASE_URL": "postgres://u:p@db:5432/saga"},
        {"DATABASE_URL": "postgresql+psycopg2://u@/saga?host=/run/pg"},
        {"DATABASE_URL": "sqlite://"},
        {"KAFKA_BOOTSTRAP_SERVERS": "k1:9092, 10.0.0.2:9093,[::1]:9094"},
        {"SAGA_STEP_DEADLINE_SECONDS": "604800", "SAGA_ORDER_TIMER_MINUTES": "10080"},
        {"SAGA_COMPENSATION_ATTEMPTS": "1000", "SAGA_COMPENSATION_BACKOFF_MAX_SECONDS": "86400"},
        {"PORT": " 8080 ", "SAGA_TRANSPORT": ""},  # surrounding blanks and empty values are forgiven
    ],
)
def test_values_at_the_edges_are_accepted(environ: dict[str, str]) -> None:
    Settings.from_env(environ)


def test_every_variable_is_in_the_readme_table_exactly_as_declared() -> None:
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme, (
        "README's configuration table differs from src/saga/entrypoints/config.py: "
        "paste the output of `python -m saga.entrypoints.config`"
    )


def test_every_variable_the_docs_name_is_declared() -> None:
    declared = {name.upper() for name in Environment.model_fields}
    mentioned: set[str] = set()
    for document in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        mentioned |= set(
            re.findall(r"\b(?:SAGA|KAFKA)_[A-Z0-9_]*[A-Z0-9]\b|\b[A-Z]+_(?:URL|SERVICE_URL)\b", document.read_text())
        )
    # Knobs of the test suite and the benchmark (SAGA_TEST_*, a scenario's seed) are not settings.
    test_sources = " ".join(
        path.read_text() for folder in ("tests", "benchmarks") for path in (ROOT / folder).rglob("*.py")
    )
    service_sources = " ".join(path.read_text() for path in (ROOT / "src").rglob("*.py"))
    test_only = {name for name in mentioned if name in test_sources and name not in service_sources}
    assert mentioned - test_only - declared == set()


def test_every_variable_says_what_it_means_and_what_it_accepts() -> None:
    for name, info in Environment.model_fields.items():
        assert info.description, name
        extra = info.json_schema_extra
        assert (isinstance(extra, dict) and "accepts" in extra) or info.annotation not in (str, str | None), name
