"""The SQLAlchemy store on a SQLite file, migrated by Alembic, held to the persistence contract."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect
from tests.unit.persistence_contract import RENDEZVOUS_TIMEOUT, PersistenceContract, make_saga

from saga.adapters.migrations import current_revision, head_revision, upgrade
from saga.adapters.sqlalchemy_store import SqlAlchemyUnitOfWork, create_engine_from_url, metadata
from saga.ports.persistence import StorageUnavailable, UnitOfWorkFactory


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'saga.db'}"


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    upgrade(sqlite_url)
    engine = create_engine_from_url(sqlite_url)
    yield engine
    engine.dispose()


class TestSqliteStore(PersistenceContract):
    @pytest.fixture
    def uow_factory(self, engine: Engine) -> UnitOfWorkFactory:
        return partial(SqlAlchemyUnitOfWork, engine)


def test_the_migration_brings_an_empty_file_to_head(sqlite_url: str) -> None:
    assert current_revision(sqlite_url) is None

    upgrade(sqlite_url)
    upgrade(sqlite_url)  # again: nothing left to do

    assert current_revision(sqlite_url) == head_revision() == "0001"


def test_the_migrated_schema_is_the_one_the_adapter_declares(engine: Engine) -> None:
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
        tables = set(inspect(connection).get_table_names())

    assert differences == []
    assert tables == {"alembic_version", "sagas", "outbox", "inbox"}


def test_sqlite_files_use_write_ahead_logging(engine: Engine) -> None:
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_a_unit_of_work_waits_for_the_one_writing_before_it(engine: Engine) -> None:
    """Transactions begin IMMEDIATE: the second queues at BEGIN instead of failing later."""
    saga = make_saga()
    seen: list[object] = []

    def read() -> None:
        with SqlAlchemyUnitOfWork(engine) as uow:
            seen.append(uow.sagas.get(saga.id))

    reader = threading.Thread(target=read)
    with SqlAlchemyUnitOfWork(engine) as writer:
        writer.sagas.add(saga)
        reader.start()
        time.sleep(0.3)
        assert reader.is_alive() and seen == []
        writer.commit()
    reader.join(timeout=RENDEZVOUS_TIMEOUT)

    assert seen == [saga]


def test_a_database_locked_past_the_busy_timeout_is_storage_unavailable(sqlite_url: str, engine: Engine) -> None:
    impatient = create_engine_from_url(sqlite_url, connect_args={"timeout": 0.1})
    try:
        with SqlAlchemyUnitOfWork(engine) as writer:
            writer.sagas.add(make_saga())
            with pytest.raises(StorageUnavailable, match="locked"), SqlAlchemyUnitOfWork(impatient):
                pass
    finally:
        impatient.dispose()


def test_an_unreachable_database_is_storage_unavailable(tmp_path: Path) -> None:
    engine = create_engine_from_url(f"sqlite:///{tmp_path / 'missing-directory' / 'saga.db'}")
    try:
        with pytest.raises(StorageUnavailable), SqlAlchemyUnitOfWork(engine):
            pass
    finally:
        engine.dispose()


def test_a_unit_of_work_used_outside_its_block_says_so(engine: Engine) -> None:
    uow = SqlAlchemyUnitOfWork(engine)
    with pytest.raises(RuntimeError, match="outside"):
        uow.sagas.get("anything")


def test_a_read_only_unit_of_work_reads_beside_a_writer_without_waiting(engine: Engine) -> None:
    saga = make_saga()
    with SqlAlchemyUnitOfWork(engine) as uow:
        uow.sagas.add(saga)
        uow.commit()
    with SqlAlchemyUnitOfWork(engine) as writer:
        changed = writer.sagas.get(saga.id)
        assert changed is not None
        changed.error = "uncommitted"
        writer.sagas.save(changed)  # the writer holds SQLite's write lock from here on
        started = time.monotonic()
        with SqlAlchemyUnitOfWork(engine, read_only=True) as reader:
            seen = reader.sagas.get(saga.id)
        waited = time.monotonic() - started
    assert seen is not None and seen.error == saga.error != "uncommitted"  # the committed snapshot
    assert waited < 1.0  # a writing unit of work would wait out the busy timeout
