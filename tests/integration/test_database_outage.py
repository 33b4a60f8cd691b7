"""PostgreSQL lost under a running orchestrator: clear 503s, nothing half-written, then recovery."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from tests.support.scenarios import SEED_ORDER, assert_completes
from tests.support.servers import saga_process

from saga.adapters.sql import database_url


@pytest.fixture
def admin(postgres_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url(postgres_url), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def set_connections_allowed(admin: Engine, name: str, allowed: bool) -> None:
    with admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
        if not allowed:
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"), {"name": name}
            )


def test_database_down_gives_503_and_readyz_names_it_then_the_service_recovers(
    admin: Engine, postgres_url: str, tmp_path: Path
) -> None:
    name = f"saga_outage_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    try:
        with saga_process(["serve"], {"DATABASE_URL": url}, tmp_path / "server.log") as base:
            assert_completes(base)
            set_connections_allowed(admin, name, False)

            refused = [requests.post(f"{base}/api/orders", json=SEED_ORDER, timeout=10) for _ in range(3)]
            assert [r.status_code for r in refused] == [503, 503, 503]
            assert all(r.json()["success"] is False for r in refused)
            ready = requests.get(f"{base}/readyz", timeout=10)
            assert ready.status_code == 503 and "database" in ready.json()["problems"]
            # The driver's text (host, port, socket path) goes to the log, not to whoever asks.
            assert ready.json()["problems"]["database"] == "database unavailable"
            assert requests.get(f"{base}/healthz", timeout=10).status_code == 200

            set_connections_allowed(admin, name, True)
            deadline = time.monotonic() + 10
            while requests.get(f"{base}/readyz", timeout=10).status_code != 200:
                assert time.monotonic() < deadline, "the service did not recover"
                time.sleep(0.1)
            assert_completes(base)
            assert len(requests.get(f"{base}/api/sagas", timeout=10).json()) == 2  # the refused orders left nothing
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
