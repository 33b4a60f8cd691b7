"""The container resolves every provider, and starts and stops the process's resources as one."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from dependency_injector import providers
from sqlalchemy import Engine, QueuePool

from saga.adapters.memory_transport import InMemoryTransport
from saga.entrypoints.config import Settings
from saga.entrypoints.container import Container, build_container, running
from saga.ports.messaging import CommandPublisher
from saga.ports.persistence import UnitOfWork


def loop_threads() -> set[str]:
    return {thread.name for thread in threading.enumerate() if thread.name.startswith("saga-")}


def wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.mark.parametrize("database", ["memory", "sqlite"])
def test_every_provider_resolves(tmp_path: Path, database: str) -> None:
    url = "memory://" if database == "memory" else f"sqlite:///{tmp_path / 'saga.db'}"
    container = Container(settings=Settings(database_url=url))
    with running(container):
        for name, provider in container.providers.items():
            if isinstance(provider, providers.Dependency) or (database == "memory" and name == "engine"):
                continue  # the engine is only built for a SQL database
            assert provider() is not None, name
        assert isinstance(container.unit_of_work(), UnitOfWork)
        assert isinstance(container.publisher(), CommandPublisher)
        assert container.unit_of_work() is not container.unit_of_work()  # a unit of work per use
        assert container.orchestrator() is container.orchestrator()


def test_running_starts_the_engine_schema_publisher_and_loops_and_stops_them_all(tmp_path: Path) -> None:
    closed: list[str] = []

    class ClosingTransport(InMemoryTransport):
        def close(self) -> None:
            closed.append("publisher")

    container = build_container(Settings(database_url=f"sqlite:///{tmp_path / 'saga.db'}"))
    container.memory_transport.override(providers.Object(ClosingTransport({})))
    assert loop_threads() == set()

    with running(container):
        engine = container.engine()
        assert isinstance(engine, Engine)
        pool = engine.pool
        assert isinstance(pool, QueuePool)
        wait_for(lambda: container.schema().ready)
        wait_for(lambda: {"saga-outbox-relay", "saga-deadline-sweeper", "saga-retention"} <= loop_threads())
        with engine.connect():  # the pool holds a connection once one was used
            pass
        assert pool.checkedin() == 1

    assert loop_threads() == set()
    assert closed == ["publisher"]
    assert pool.checkedin() == 0  # disposed: its connections closed
    assert not any(provider.initialized for provider in container.traverse(types=[providers.Resource]))


def test_an_api_only_process_runs_only_the_relay() -> None:
    container = build_container(Settings(database_url="memory://"), relay_only=True)
    with running(container):
        wait_for(lambda: "saga-outbox-relay" in loop_threads())
        time.sleep(0.1)
        assert loop_threads() == {"saga-outbox-relay"}
    assert loop_threads() == set()


def test_a_database_unreachable_at_start_is_migrated_once_it_answers_and_the_loops_start_then(tmp_path: Path) -> None:
    folder = tmp_path / "not-yet"  # SQLite cannot open a file in a folder that does not exist: unreachable
    settings = Settings(database_url=f"sqlite:///{folder / 'saga.db'}", retry_max_seconds=0.05)
    container = build_container(settings)
    with running(container):
        schema = container.schema()
        assert schema.problem() == "database unavailable"
        time.sleep(0.3)  # several attempts
        assert not schema.ready and "saga-outbox-relay" not in loop_threads()

        folder.mkdir()  # the database answers
        wait_for(lambda: schema.ready)
        assert schema.problem() is None
        wait_for(lambda: "saga-outbox-relay" in loop_threads())
    assert loop_threads() == set()
