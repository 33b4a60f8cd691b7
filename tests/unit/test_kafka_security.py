"""Kafka TLS and SASL settings: read from the environment, checked at start, and handed to every
kafka-python client by kafka-python's own option names. (TLS runs for real in
tests/integration/test_kafka_tls.py; the test broker has no SASL, so SASL is checked here.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from saga.entrypoints.config import ConfigError, Settings


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, str]:
    files = {}
    for name in ("ca", "cert", "key"):
        path = tmp_path / f"{name}.pem"
        path.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
        files[name] = str(path)
    return files


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_over_tls_is_handed_to_the_clients(mechanism: str, pem_files: dict[str, str]) -> None:
    kafka = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "broker-1.prod:9093,broker-2.prod:9093",
            "SAGA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "SAGA_KAFKA_SSL_CAFILE": pem_files["ca"],
            "SAGA_KAFKA_SASL_MECHANISM": mechanism,
            "SAGA_KAFKA_SASL_USERNAME": "saga-orchestrator",
            "SAGA_KAFKA_SASL_PASSWORD": "pa ss:wörd",
        }
    ).kafka
    assert kafka.client_options() == {
        "security_protocol": "SASL_SSL",
        "ssl_check_hostname": True,
        "ssl_cafile": pem_files["ca"],
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "saga-orchestrator",
        "sasl_plain_password": "pa ss:wörd",
    }


def test_mutual_tls_hands_over_the_client_certificate(pem_files: dict[str, str]) -> None:
    kafka = Settings.from_env(
        {
            "SAGA_KAFKA_SECURITY_PROTOCOL": "SSL",
            "SAGA_KAFKA_SSL_CAFILE": pem_files["ca"],
            "SAGA_KAFKA_SSL_CERTFILE": pem_files["cert"],
            "SAGA_KAFKA_SSL_KEYFILE": pem_files["key"],
            "SAGA_KAFKA_SSL_PASSWORD": "key-secret",
            "SAGA_KAFKA_SSL_CHECK_HOSTNAME": "false",
        }
    ).kafka
    assert kafka.client_options() == {
        "security_protocol": "SSL",
        "ssl_check_hostname": False,
        "ssl_cafile": pem_files["ca"],
        "ssl_certfile": pem_files["cert"],
        "ssl_keyfile": pem_files["key"],
        "ssl_password": "key-secret",
    }


def test_sasl_plaintext_passes_no_tls_options() -> None:
    kafka = Settings.from_env(
        {
            "SAGA_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "SAGA_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "SAGA_KAFKA_SASL_USERNAME": "u",
            "SAGA_KAFKA_SASL_PASSWORD": "p",
        }
    ).kafka
    assert set(kafka.client_options()) == {
        "security_protocol",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
    }


def test_plaintext_is_the_default_and_passes_nothing() -> None:
    assert Settings.from_env({}).kafka.client_options() == {}


def test_every_option_is_one_each_kafka_python_client_knows(pem_files: dict[str, str]) -> None:
    options = Settings.from_env(
        {
            "SAGA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "SAGA_KAFKA_SSL_CAFILE": pem_files["ca"],
            "SAGA_KAFKA_SSL_CERTFILE": pem_files["cert"],
            "SAGA_KAFKA_SSL_KEYFILE": pem_files["key"],
            "SAGA_KAFKA_SSL_PASSWORD": "x",
            "SAGA_KAFKA_SASL_MECHANISM": "PLAIN",
            "SAGA_KAFKA_SASL_USERNAME": "u",
            "SAGA_KAFKA_SASL_PASSWORD": "p",
        }
    ).kafka.client_options()
    for client in (KafkaProducer, KafkaConsumer, KafkaAdminClient):
        assert set(options) <= set(client.DEFAULT_CONFIG), client.__name__


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"SAGA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "SAGA_KAFKA_SASL_USERNAME": "u"}, "SAGA_KAFKA_SASL_MECHANISM"),
        (
            {"SAGA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "SAGA_KAFKA_SASL_MECHANISM": "PLAIN"},
            "SAGA_KAFKA_SASL_USERNAME",
        ),
        ({"SAGA_KAFKA_SASL_MECHANISM": "PLAIN"}, "SAGA_KAFKA_SECURITY_PROTOCOL"),
        ({"SAGA_KAFKA_SECURITY_PROTOCOL": "SSL", "SAGA_KAFKA_SSL_CAFILE": "/no/such/ca.pem"}, "SAGA_KAFKA_SSL_CAFILE"),
        ({"SAGA_KAFKA_SECURITY_PROTOCOL": "TLS"}, "SAGA_KAFKA_SECURITY_PROTOCOL"),
        (
            {"SAGA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "SAGA_KAFKA_SASL_MECHANISM": "GSSAPI"},
            "SAGA_KAFKA_SASL_MECHANISM",
        ),
    ],
)
def test_an_incomplete_or_unknown_security_setting_stops_the_start_naming_the_variable(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(environ)
