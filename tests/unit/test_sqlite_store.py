"""The SQLAlchemy store on a SQLite file, migrated by Alembic, held to the persistence contract."""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, event, inspect, select, text
from tests.unit.persistence_contract import (
    RENDEZVOUS_TIMEOUT,
    T0,
    PersistenceContract,
    check_resources_held_before_the_upgrade_to_holders_are_found,
    check_sagas_survive_the_upgrade_to_history_rows,
    make_saga,
)

from saga.adapters.sql import SqlAlchemyUnitOfWork, create_engine_from_url
from saga.adapters.sql.engine import decode_stored_json
from saga.adapters.sql.migrations import MIGRATIONS_DIRECTORY, current_revision, head_revision, upgrade
from saga.adapters.sql.schema import metadata, sagas
from saga.domain.policy import SagaPolicy
from saga.domain.saga import CreateOrderSaga, HistoryEntry, HistoryKind
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


def test_the_migration_brings_an_empty_file_to_head(sqlite_url: str, tmp_path: Path) -> None:
    (tmp_path / "saga.db").touch()
    assert current_revision(sqlite_url) is None

    upgrade(sqlite_url)
    upgrade(sqlite_url)  # again: nothing left to do

    assert current_revision(sqlite_url) == head_revision() == "0005"


def test_the_migrated_schema_is_the_one_the_adapter_declares(engine: Engine) -> None:
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
        tables = set(inspect(connection).get_table_names())

    assert differences == []
    assert tables == {
        "alembic_version",
        "sagas",
        "outbox",
        "inbox",
        "idempotency_keys",
        "saga_history",
        "saga_resources",
    }


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


def test_asking_a_missing_file_its_revision_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"

    with pytest.raises(StorageUnavailable, match="no SQLite database"):
        current_revision(f"sqlite:///{missing}")

    assert not missing.exists()


def test_migrating_logs_no_line_per_alembic_plugin(sqlite_url: str) -> None:
    script = (
        "import logging; logging.basicConfig(level=logging.INFO);"
        "from saga.adapters.sql.migrations import upgrade; upgrade(__import__('sys').argv[1])"
    )
    run = subprocess.run([sys.executable, "-c", script, sqlite_url], capture_output=True, text=True, timeout=60)

    assert run.returncode == 0, run.stderr
    assert "Running upgrade" in run.stderr  # what a migration did is still told
    assert "alembic.runtime.plugins" not in run.stderr


def test_every_migration_script_ships_in_the_package() -> None:
    """A non-editable install carries only what the package-data patterns name."""
    project = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["saga"]
    package = project / "src" / "saga"
    scripts = [path for path in MIGRATIONS_DIRECTORY.rglob("*") if path.is_file() and "__pycache__" not in path.parts]
    # Modules of a Python package (a directory with __init__.py) ship without a pattern.
    unshipped = [
        path.relative_to(package).as_posix()
        for path in scripts
        if not (path.suffix == ".py" and (path.parent / "__init__.py").exists())
        and not any(fnmatch.fnmatch(path.relative_to(package).as_posix(), pattern) for pattern in patterns)
    ]

    assert any(path.parent.name == "versions" for path in scripts)
    assert unshipped == []


def test_a_stored_record_without_a_newer_field_reads_back_with_its_default(engine: Engine) -> None:
    saga = make_saga()
    assert saga.awaiting is not None and not saga.awaiting.sent
    with SqlAlchemyUnitOfWork(engine) as uow:
        uow.sagas.add(saga)
        uow.commit()
    with engine.begin() as connection:
        [awaiting] = connection.execute(select(sagas.c.awaiting).where(sagas.c.id == saga.id)).scalars()
        del awaiting["sent"]  # as a row written before the field existed
        connection.execute(sagas.update().where(sagas.c.id == saga.id).values(awaiting=awaiting))

    with SqlAlchemyUnitOfWork(engine) as uow:
        loaded = uow.sagas.get(saga.id)

    assert loaded is not None and loaded.awaiting == replace(saga.awaiting, sent=True)


def test_a_database_at_the_first_revision_upgrades_keeping_its_inbox_and_sagas(sqlite_url: str, tmp_path: Path) -> None:
    (tmp_path / "saga.db").touch()
    upgrade(sqlite_url, "0001")
    engine = create_engine_from_url(sqlite_url)
    saga_id = "6f1c2a8e-3b7d-4c55-9a0e-0d6b2f9e4a11"
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO inbox (message_id, saga_id, processed_at) VALUES ('m-1', :saga, '2026-11-28 12:00:00')"),
            {"saga": saga_id},
        )

    upgrade(sqlite_url)

    assert current_revision(sqlite_url) == head_revision()
    with engine.begin() as connection:
        rows = connection.execute(text("SELECT saga_id, message_id FROM inbox")).all()
        columns = {column["name"] for column in inspect(connection).get_columns("sagas")}
    assert [tuple(row) for row in rows] == [(saga_id, "m-1")]
    assert "cleanup_unconfirmed" in columns
    with SqlAlchemyUnitOfWork(engine) as uow:
        assert uow.inbox.record("m-1", saga_id, datetime.now(UTC)) is False
        assert uow.inbox.record("m-1", "another-saga", datetime.now(UTC)) is True
    engine.dispose()


def test_a_database_with_history_in_a_column_upgrades_and_its_sagas_read_back_the_same(sqlite_url: str) -> None:
    check_sagas_survive_the_upgrade_to_history_rows(sqlite_url)


def test_a_database_at_0004_upgrades_and_finds_who_holds_what_its_sagas_held(sqlite_url: str) -> None:
    check_resources_held_before_the_upgrade_to_holders_are_found(sqlite_url)


def test_a_resource_held_beside_the_columns_is_one_row_however_often_saved(engine: Engine) -> None:
    saga = make_saga()  # its clean-up names order-2, which is not its order_id
    with SqlAlchemyUnitOfWork(engine) as uow:
        uow.sagas.add(saga)
        uow.commit()
    for error in ("again", "and again"):
        # Saved by units of work that did not read it: they cannot tell what is stored.
        with SqlAlchemyUnitOfWork(engine) as uow:
            saga.error = error
            uow.sagas.save(saga)
            uow.commit()

    with engine.connect() as connection:
        rows = connection.execute(text("SELECT kind, resource_id, saga_id FROM saga_resources")).all()
    assert [tuple(row) for row in rows] == [("order", "order-2", saga.id)]


def test_a_save_writes_only_what_changed_and_appends_the_new_history(engine: Engine) -> None:
    saga = make_saga()
    with SqlAlchemyUnitOfWork(engine) as uow:
        uow.sagas.add(saga)
        uow.commit()
    executed: list[tuple[str, object]] = []

    def note(conn: object, cursor: object, statement: str, parameters: object, *rest: object) -> None:
        executed.append((" ".join(statement.split()), parameters))

    event.listen(engine, "before_cursor_execute", note)
    try:
        with SqlAlchemyUnitOfWork(engine) as uow:
            loaded = uow.sagas.get(saga.id)
            assert loaded is not None
            executed.clear()
            loaded.error = "changed"
            loaded.history.append(HistoryEntry(T0 + timedelta(hours=1), HistoryKind.STATUS, "FAILED", None, "x"))
            uow.sagas.save(loaded)
            uow.commit()
    finally:
        event.remove(engine, "before_cursor_execute", note)

    [(update, _), (insert, rows)] = executed
    assert update.startswith("UPDATE sagas SET error=?, version=? WHERE")  # not the order, not the history
    assert insert.startswith("INSERT INTO saga_history") and isinstance(rows, tuple)  # one row
    assert rows[:2] == (saga.id, len(saga.history))
    with SqlAlchemyUnitOfWork(engine) as uow:
        assert uow.sagas.get(saga.id) == loaded


@pytest.mark.parametrize(
    ("stored", "value"),
    [
        ('{"a": [1, 2.5, "x", null, true]}', {"a": [1, 2.5, "x", None, True]}),
        ('{"quantity": 1180591620717411303424}', {"quantity": 2**70}),  # past 64 bits
        ("[9223372036854775807, 18446744073709551616, -1e-400]", [2**63 - 1, 2**64, -0.0]),
        ('{"note": NaN, "more": [Infinity]}', None),  # written before non-finite numbers were refused
        ('"\\ud800"', "\ud800"),  # a lone surrogate, which orjson refuses
    ],
)
def test_stored_json_reads_back_as_the_standard_library_reads_it(stored: str, value: object) -> None:
    expected = json.loads(stored)

    found = decode_stored_json(stored)

    assert repr(found) == repr(expected)
    if value is not None:
        assert found == value
    assert repr(decode_stored_json(stored.encode("utf-8", "surrogatepass"))) == repr(expected)


def test_a_saga_whose_order_holds_an_integer_past_64_bits_reads_back(engine: Engine) -> None:
    saga, _ = CreateOrderSaga.start(
        str(uuid.uuid4()), "c-1", {"foodItems": [], "quantity": 2**70}, 100, "USD", datetime.now(UTC), SagaPolicy()
    )
    with SqlAlchemyUnitOfWork(engine) as uow:
        uow.sagas.add(saga)
        uow.commit()

    with SqlAlchemyUnitOfWork(engine) as uow:
        stored = uow.sagas.get(saga.id)

    assert stored is not None and stored.order_details["quantity"] == 2**70
