"""The SQLAlchemy store on a real PostgreSQL, migrated by Alembic, held to the persistence contract."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import partial

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import DateTime, Engine, inspect, text
from tests.unit.persistence_contract import (
    RENDEZVOUS_TIMEOUT,
    OverlappingTransactionsContract,
    PersistenceContract,
    check_resources_held_before_the_upgrade_to_holders_are_found,
    check_sagas_survive_the_upgrade_to_history_rows,
    make_saga,
    run_in_threads,
)

from saga.adapters.sql import SqlAlchemyUnitOfWork, create_engine_from_url
from saga.adapters.sql.migrations import current_revision, head_revision, upgrade
from saga.adapters.sql.schema import metadata
from saga.ports.persistence import ConcurrencyConflict, StorageUnavailable, UnitOfWorkFactory

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(fresh_database_url: str) -> Iterator[Engine]:
    upgrade(fresh_database_url)
    engine = create_engine_from_url(fresh_database_url)
    yield engine
    engine.dispose()


class TestPostgresStore(PersistenceContract, OverlappingTransactionsContract):
    @pytest.fixture
    def uow_factory(self, engine: Engine) -> UnitOfWorkFactory:
        return partial(SqlAlchemyUnitOfWork, engine)


def test_the_migration_applies_to_an_empty_database(fresh_database_url: str) -> None:
    assert current_revision(fresh_database_url) is None

    upgrade(fresh_database_url)
    upgrade(fresh_database_url)  # again: nothing left to do

    assert current_revision(fresh_database_url) == head_revision() == "0005"
    engine = create_engine_from_url(fresh_database_url)
    try:
        with engine.connect() as connection:
            schema = inspect(connection)
            tables = set(schema.get_table_names())
            outbox_indexes = {index["name"]: index for index in schema.get_indexes("outbox")}
            amount = next(column for column in schema.get_columns("sagas") if column["name"] == "amount_cents")
            created_at = next(column for column in schema.get_columns("sagas") if column["name"] == "created_at")
    finally:
        engine.dispose()
    assert tables == {
        "alembic_version",
        "sagas",
        "outbox",
        "inbox",
        "idempotency_keys",
        "saga_history",
        "saga_resources",
    }
    assert outbox_indexes["ix_outbox_unsent_available_at_id"]["dialect_options"]["postgresql_where"] == (
        "(sent_at IS NULL)"
    )
    assert str(amount["type"]) == "BIGINT"
    assert isinstance(created_at["type"], DateTime) and created_at["type"].timezone is True


def test_replicas_migrating_at_once_both_succeed(fresh_database_url: str) -> None:
    start = threading.Barrier(2, timeout=RENDEZVOUS_TIMEOUT)

    def migrate() -> None:
        start.wait()
        upgrade(fresh_database_url)

    run_in_threads(migrate, migrate)

    assert current_revision(fresh_database_url) == head_revision()


def test_the_migrated_schema_is_the_one_the_adapter_declares(engine: Engine) -> None:
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)

    assert differences == []


def test_a_deadlock_is_a_concurrency_conflict(engine: Engine) -> None:
    one, other = make_saga(), make_saga()
    with SqlAlchemyUnitOfWork(engine) as uow:
        uow.sagas.add(one)
        uow.sagas.add(other)
        uow.commit()
    first_saves_done = threading.Barrier(2, timeout=RENDEZVOUS_TIMEOUT)
    outcomes: list[str] = []

    def save_in_order(first_id: str, second_id: str) -> Callable[[], None]:
        def run() -> None:
            try:
                with SqlAlchemyUnitOfWork(engine) as uow:
                    first, second = uow.sagas.get(first_id), uow.sagas.get(second_id)
                    assert first is not None and second is not None
                    uow.sagas.save(first)
                    first_saves_done.wait()
                    uow.sagas.save(second)  # each now waits for the other's row lock
                    uow.commit()
                outcomes.append("committed")
            except ConcurrencyConflict:
                outcomes.append("conflict")

        return run

    run_in_threads(save_in_order(one.id, other.id), save_in_order(other.id, one.id))

    assert sorted(outcomes) == ["committed", "conflict"]


def test_a_lost_connection_is_storage_unavailable_and_the_next_unit_of_work_recovers(engine: Engine) -> None:
    saga = make_saga()
    with SqlAlchemyUnitOfWork(engine) as uow:
        uow.sagas.add(saga)
        uow.commit()

    with pytest.raises(StorageUnavailable), SqlAlchemyUnitOfWork(engine) as uow:
        assert uow.sagas.get(saga.id) == saga
        with engine.connect() as admin:
            admin.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        uow.sagas.get(saga.id)

    with SqlAlchemyUnitOfWork(engine) as uow:
        assert uow.sagas.get(saga.id) == saga


def test_an_unreachable_server_is_storage_unavailable(tmp_path_factory: pytest.TempPathFactory) -> None:
    nowhere = tmp_path_factory.mktemp("no-server")
    engine = create_engine_from_url(f"postgresql://postgres@/saga?host={nowhere}")
    try:
        with pytest.raises(StorageUnavailable), SqlAlchemyUnitOfWork(engine):
            pass
        with pytest.raises(StorageUnavailable):
            current_revision(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u:p@db:5432/orders", "postgresql+psycopg2"),
        ("postgres://u:p@db:5432/orders", "postgresql+psycopg2"),
        ("postgresql+psycopg2://u:p@db/orders", "postgresql+psycopg2"),
        ("sqlite:///saga.db", "sqlite"),
    ],
)
def test_database_urls_are_read_with_our_driver(given: str, driver: str) -> None:
    engine = create_engine_from_url(given)
    try:
        assert engine.url.drivername == driver
        assert engine.url.database in ("orders", "saga.db")
    finally:
        engine.dispose()


def test_a_database_with_history_in_a_column_upgrades_and_its_sagas_read_back_the_same(fresh_database_url: str) -> None:
    check_sagas_survive_the_upgrade_to_history_rows(fresh_database_url)


def test_a_database_at_0004_upgrades_and_finds_who_holds_what_its_sagas_held(fresh_database_url: str) -> None:
    check_resources_held_before_the_upgrade_to_holders_are_found(fresh_database_url)
