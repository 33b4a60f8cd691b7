"""Kafka over TLS for real: the test broker behind a TLS-terminating proxy, with a throwaway CA,
advertising the proxy's address, so every client connection (the orchestrator's producer,
consumers and admin client, and the simulated participants') is TLS. A saga completes through it."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
import requests
import trustme
from tests.support.kafka import new_setup, tansu_broker
from tests.support.scenarios import SEED_ORDER, start_order
from tests.support.servers import free_port, saga_background, saga_process, wait_for_log, wait_for_status
from tests.support.tls_proxy import tls_proxy

pytestmark = pytest.mark.kafka

SIMULATOR_READY = "simulator ready"


def test_a_saga_completes_over_kafka_with_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    certificate = ca.issue_cert("127.0.0.1", "localhost")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    broker_port, proxy_port = free_port(), free_port()
    with (
        tansu_broker(broker_port, tmp_path / "tansu.log", advertised_port=proxy_port),
        tls_proxy(proxy_port, broker_port, server_context) as proxy,
    ):
        setup = new_setup(f"127.0.0.1:{proxy_port}")
        env = setup.env(
            f"sqlite:///{tmp_path / 'saga.db'}",
            SAGA_KAFKA_SECURITY_PROTOCOL="SSL",
            SAGA_KAFKA_SSL_CAFILE=str(ca_file),
        )
        with (
            saga_process(["serve"], env, tmp_path / "serve.log") as base,
            saga_background(setup.simulator_args(), env, tmp_path / "simulator.log", SIMULATOR_READY),
        ):
            saga_id = start_order(base, SEED_ORDER)
            saga = wait_for_status(base, saga_id, {"COMPLETED", "FAILED", "COMPENSATION_FAILED"}, timeout=60)
            assert saga["status"] == "COMPLETED", saga
            assert requests.get(f"{base}/readyz", timeout=10).status_code == 200
        assert proxy.handshakes >= 3  # producer, consumer, admin client at the least

        # The proxy speaks only TLS: a plain Kafka request (ApiVersions) gets no Kafka answer.
        with socket.create_connection(("127.0.0.1", proxy_port), timeout=5) as plain:
            plain.sendall(bytes.fromhex("0000000e0012000000000001000474657374"))
            reply = plain.recv(64)
        assert reply == b"" or reply[0] == 0x15  # closed, or a TLS alert record


def test_a_client_without_the_ca_is_refused_by_the_brokers_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    broker_port, proxy_port = free_port(), free_port()
    with (
        tansu_broker(broker_port, tmp_path / "tansu.log", advertised_port=proxy_port),
        tls_proxy(proxy_port, broker_port, server_context),
    ):
        setup = new_setup(f"127.0.0.1:{proxy_port}")
        env = setup.env(f"sqlite:///{tmp_path / 'saga.db'}", SAGA_KAFKA_SECURITY_PROTOCOL="SSL")
        log = tmp_path / "serve.log"
        with saga_process(["serve"], env, log) as base:
            wait_for_log(log, "CERTIFICATE_VERIFY_FAILED")
            ready = requests.get(f"{base}/readyz", timeout=30)
            assert ready.status_code == 503, ready.text
            assert start_order(base, SEED_ORDER)  # accepted into the outbox; nothing reaches Kafka
