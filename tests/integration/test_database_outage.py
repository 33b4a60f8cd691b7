"""PostgreSQL lost under a running orchestrator, or down when it starts: clear 503s, nothing
half-written, one log line when the outage starts and one when it ends, then recovery."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from tests.support.postgres import embedded_postgres
from tests.support.scenarios import SEED_ORDER, assert_completes
from tests.support.servers import saga_process

from saga.adapters.sql import database_url

CLOSED = "http://127.0.0.1:9"  # nothing listens there
HTTP_TRANSPORT = {
    "SAGA_TRANSPORT": "http",
    **{
        name: CLOSED
        for name in ("ORDER_SERVICE_URL", "USER_SERVICE_URL", "PAYMENT_SERVICE_URL", "SCHEDULER_SERVICE_URL")
    },
}
FAST_RETRIES = {"SAGA_RETRY_MAX_SECONDS": "0.5"}


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


class StoppablePostgres:
    """A PostgreSQL server of this module's own, stopped and started again on the same data directory."""

    def __init__(self, server: Any) -> None:
        self._server = server
        server.psql("CREATE DATABASE saga_outage;")
        self.url: str = server.get_uri("saga_outage")

    def stop(self) -> None:
        # embedded_postgres builds its command functions at import time, out of mypy's sight.
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self._server.pgdata, user=self._server.system_user, timeout=30)

    def start(self) -> None:
        self._server.ensure_postgres_running()
        assert self._server.get_uri("saga_outage") == self.url  # same socket: clients find it again


@pytest.fixture(scope="module")
def stoppable_postgres() -> Iterator[StoppablePostgres]:
    with embedded_postgres(prefix="saga-outage-") as server:
        postgres = StoppablePostgres(server)
        try:
            yield postgres
        finally:
            postgres.start()  # the wheel's cleanup stops a running server


def wait_ready(base: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while requests.get(f"{base}/readyz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the process did not become ready"
        time.sleep(0.1)


def count_lines(log: Path, pattern: str) -> int:
    return len(re.findall(pattern, log.read_text(errors="replace")))


@pytest.mark.parametrize(("command", "env"), [(["serve"], {}), (["worker"], HTTP_TRANSPORT)], ids=["serve", "worker"])
def test_started_while_postgres_is_down_it_serves_health_then_becomes_ready_when_postgres_answers(
    stoppable_postgres: StoppablePostgres, tmp_path: Path, command: list[str], env: dict[str, str]
) -> None:
    log = tmp_path / "saga.log"
    stoppable_postgres.stop()
    try:
        with saga_process(command, {"DATABASE_URL": stoppable_postgres.url, **FAST_RETRIES, **env}, log) as base:
            assert requests.get(f"{base}/healthz", timeout=10).status_code == 200
            ready = requests.get(f"{base}/readyz", timeout=10)
            assert ready.status_code == 503
            assert ready.json()["problems"]["database"] == "database unavailable"  # no driver text, host or path
            assert "saga-outage-" not in ready.text and "5432" not in ready.text
            time.sleep(2.0)  # several attempts at the capped backoff
            assert requests.get(f"{base}/readyz", timeout=10).status_code == 503

            stoppable_postgres.start()
            wait_ready(base)
            if command == ["serve"]:
                assert_completes(base)
    finally:
        stoppable_postgres.start()
    text_of_log = log.read_text(errors="replace")
    assert "Traceback" not in text_of_log
    assert count_lines(log, r"database migration at start \(DATABASE_URL\) failing") == 1, text_of_log
    assert count_lines(log, r"database migration at start \(DATABASE_URL\) working again after \d+ failed") == 1


def test_an_outage_under_running_loops_is_logged_once_when_it_starts_and_once_when_it_ends(
    stoppable_postgres: StoppablePostgres, tmp_path: Path
) -> None:
    log = tmp_path / "saga.log"
    env = {"DATABASE_URL": stoppable_postgres.url, **FAST_RETRIES}
    with saga_process(["serve"], env, log) as base:
        wait_ready(base)
        assert_completes(base)
        stoppable_postgres.stop()
        try:
            time.sleep(3.0)  # the sweeper runs every second, the relay polls every second
            assert requests.get(f"{base}/readyz", timeout=10).status_code == 503
        finally:
            stoppable_postgres.start()
        wait_ready(base)
        assert_completes(base)
        time.sleep(1.5)  # each loop's next pass after the outage

    text_of_log = log.read_text(errors="replace")
    assert "Traceback" not in text_of_log
    for loop in ("outbox-relay", "deadline-sweeper"):
        assert count_lines(log, rf"{loop} loop failing") == 1, text_of_log
        assert count_lines(log, rf"{loop} loop working again after \d+ failed attempt") == 1, text_of_log
