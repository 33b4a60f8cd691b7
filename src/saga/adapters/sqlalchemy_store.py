"""The persistence port on SQLAlchemy Core: PostgreSQL (psycopg2) and SQLite through the same code.

The tables are declared here so that rows translate to domain objects in one place;
the schema itself is created by the Alembic migrations in `saga/migrations`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    event,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Dialect, Row, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, IntegrityError, TimeoutError as PoolTimeout
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

from saga.adapters.envelope import encode_json
from saga.domain.messages import Command
from saga.domain.saga import Awaiting, Compensation, CreateOrderSaga, HistoryEntry, SagaStatus, Step, Undo, UndoStatus
from saga.domain.steps import UNDO
from saga.ports.persistence import (
    ConcurrencyConflict,
    DuplicateSaga,
    Inbox,
    Outbox,
    OutboxEntry,
    PageCursor,
    PersistenceError,
    RetryLater,
    SagaPage,
    SagaRepository,
    StorageUnavailable,
    UnitOfWork,
)

SQLITE_BUSY_TIMEOUT_SECONDS = 30.0
READ_ONLY_OPTION = "saga_read_only"
# PostgreSQL aborts one side of a deadlock or a serialization failure; retrying it is safe.
RETRYABLE_PG_CODES = frozenset({"40001", "40P01"})
SQLITE_DUPLICATE_KEY_ERRORS = frozenset({"SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_UNIQUE"})
PG_UNIQUE_VIOLATION = "23505"


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime that is stored in UTC and always read back aware, in UTC.

    SQLite has no time zones: the value is stored as UTC text of fixed width, so text
    comparison is time comparison. A naive datetime is read as UTC, as the contract does.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json() -> JSON:
    # SQL NULL, not the JSON text 'null', for an absent value.
    return JSON(none_as_null=True)


# SQLite assigns ids only to an INTEGER PRIMARY KEY, so BIGINT becomes INTEGER there (64-bit anyway).
OUTBOX_ID = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

sagas = Table(
    "sagas",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(200), nullable=False),
    Column("status", String(32), nullable=False),
    Column("current_step", String(32), nullable=False),
    Column("error", Text, nullable=True),
    Column("order_id", Text, nullable=True),
    Column("payment_id", Text, nullable=True),
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("order_details", _json(), nullable=False),
    Column("payment_info", _json(), nullable=True),
    Column("awaiting", _json(), nullable=True),
    Column("compensations", _json(), nullable=False),
    Column("history", _json(), nullable=False),
    Column("cancel_requested", Boolean, nullable=False),
    Column("ignored_events", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("completed_at", UtcDateTime(), nullable=True),
    # Copied from the saga's awaited reply, and NULL once final, so the sweep reads an index only.
    Column("due_at", UtcDateTime(), nullable=True),
    Index("ix_sagas_status_created_at_id", "status", "created_at", "id"),
    Index("ix_sagas_created_at_id", "created_at", "id"),
    Index(
        "ix_sagas_due_at",
        "due_at",
        postgresql_where=text("due_at IS NOT NULL"),
        sqlite_where=text("due_at IS NOT NULL"),
    ),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", OUTBOX_ID, primary_key=True, autoincrement=True),
    Column("message_id", String(200), nullable=False),
    Column("saga_id", String(64), nullable=False),
    Column("command_type", String(64), nullable=False),
    Column("payload", _json(), nullable=False),
    # The command's own timestamp, as its envelope carries it.
    Column("created_at", UtcDateTime(), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("available_at", UtcDateTime(), nullable=False),
    Column("leased_until", UtcDateTime(), nullable=True),
    Column("sent_at", UtcDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),
    # Only unsent entries are indexed: a relay's claim reads this small index in order.
    Index(
        "ix_outbox_unsent_available_at_id",
        "available_at",
        "id",
        postgresql_where=text("sent_at IS NULL"),
        sqlite_where=text("sent_at IS NULL"),
    ),
    Index(
        "ix_outbox_unsent_message_id",
        "message_id",
        postgresql_where=text("sent_at IS NULL"),
        sqlite_where=text("sent_at IS NULL"),
    ),
    Index(
        "ix_outbox_unsent_saga_id",
        "saga_id",
        postgresql_where=text("sent_at IS NULL"),
        sqlite_where=text("sent_at IS NULL"),
    ),
)

inbox = Table(
    "inbox",
    metadata,
    Column("message_id", String(200), primary_key=True),
    Column("saga_id", String(64), nullable=False),
    Column("processed_at", UtcDateTime(), nullable=False),
    Index("ix_inbox_processed_at", "processed_at"),
)


# Statements built once: their values arrive as execute() parameters, so SQLAlchemy
# finds each compiled form in its cache without rebuilding the statement per call.
MUTABLE_SAGA_COLUMNS = tuple(
    column.name
    for column in sagas.columns
    if column.name not in ("id", "customer_id", "order_details", "amount_cents", "currency", "created_at", "version")
)
INSERT_SAGA = sagas.insert()
SELECT_SAGA = select(sagas).where(sagas.c.id == bindparam("saga_id"))
UPDATE_SAGA = sagas.update().where(sagas.c.id == bindparam("match_id"), sagas.c.version == bindparam("match_version"))
INSERT_OUTBOX = outbox.insert()
CLAIMED_COLUMNS = (
    outbox.c.id,
    outbox.c.message_id,
    outbox.c.saga_id,
    outbox.c.command_type,
    outbox.c.payload,
    outbox.c.created_at,
    outbox.c.attempts,
)
# SKIP LOCKED lets concurrent relays take disjoint batches without waiting for each
# other, and leaves out what a saga withdrawing its commands holds; SQLite has no row
# locks (BEGIN IMMEDIATE serialises its writers) and ignores it.
CLAIM_BY_MESSAGE_IDS = (
    select(*CLAIMED_COLUMNS)
    .where(outbox.c.message_id.in_(bindparam("message_ids", expanding=True)), outbox.c.sent_at.is_(None))
    .order_by(outbox.c.id)
    .with_for_update(skip_locked=True)
)
LEASE_OUTBOX = (
    outbox.update()
    .where(outbox.c.id.in_(bindparam("entry_ids", expanding=True)))
    .values(leased_until=bindparam("until"))
)
SETTLE_DELIVERED = (
    outbox.update()
    .where(outbox.c.id.in_(bindparam("entry_ids", expanding=True)))
    .values(sent_at=bindparam("now"), leased_until=None)
)
SETTLE_RETRY = (
    outbox.update()
    .where(outbox.c.id == bindparam("entry_id"), outbox.c.sent_at.is_(None))
    .values(
        available_at=bindparam("at"), leased_until=None, attempts=outbox.c.attempts + 1, last_error=bindparam("error")
    )
)
UNSENT_WITH_MESSAGE_ID = (
    select(outbox.c.id).where(outbox.c.message_id == bindparam("message_id"), outbox.c.sent_at.is_(None)).limit(1)
)
DISCARD_UNSENT_OF_SAGA = (
    outbox.update()
    .where(outbox.c.saga_id == bindparam("of_saga"), outbox.c.sent_at.is_(None))
    .values(sent_at=bindparam("now"), leased_until=None, last_error="superseded: the saga moved on")
)
PURGE_SENT_OUTBOX = outbox.delete().where(
    outbox.c.id.in_(
        select(outbox.c.id)
        .where(outbox.c.sent_at < bindparam("before"))
        .order_by(outbox.c.id)
        .limit(bindparam("batch"))
        .scalar_subquery()
    )
)
PURGE_INBOX = inbox.delete().where(
    inbox.c.message_id.in_(
        select(inbox.c.message_id)
        .where(inbox.c.processed_at < bindparam("before"))
        .order_by(inbox.c.processed_at)
        .limit(bindparam("batch"))
        .scalar_subquery()
    )
)
INSERT_INBOX = {
    # ON CONFLICT DO NOTHING: a duplicate leaves the transaction usable (a failed INSERT
    # would abort it on PostgreSQL), and a concurrent duplicate waits for the first to
    # commit and then counts as a duplicate.
    "postgresql": postgresql.insert(inbox).on_conflict_do_nothing(index_elements=["message_id"]),
    "sqlite": sqlite.insert(inbox).on_conflict_do_nothing(index_elements=["message_id"]),
}


# ----------------------------------------------------------------- engines


def database_url(url: str) -> URL:
    """The URL as SQLAlchemy should read it: a bare `postgresql://` means psycopg2, our driver.

    SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3, which is not installed; the
    seed's DATABASE_URL (and Heroku-style `postgres://`) are written that way.
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def create_engine_from_url(url: str, **kw: Any) -> Engine:
    """An engine for PostgreSQL or a SQLite file, set up for several threads writing at once."""
    parsed = database_url(url)
    kw.setdefault("json_serializer", encode_json)  # never Infinity or NaN in a JSON column
    # No pre-ping: it costs a round trip per unit of work. A dropped connection surfaces
    # as StorageUnavailable once, and SQLAlchemy then invalidates the whole pool.
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, **kw)
    connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
    connect_args.update(kw.pop("connect_args", {}))
    engine = create_engine(parsed, connect_args=connect_args, **kw)
    _begin_sqlite_transactions_immediately(engine)
    return engine


def _begin_sqlite_transactions_immediately(engine: Engine) -> None:
    """SQLAlchemy's documented pysqlite recipe, with BEGIN IMMEDIATE.

    A deferred transaction that reads and then writes cannot wait for the write lock: it
    fails with SQLITE_BUSY at once when another writer got there first. Taking the write
    lock at BEGIN makes units of work queue up (for the busy timeout) instead.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, connection_record: ConnectionPoolEntry) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            # The driver must not BEGIN on its own; the "begin" hook below does.
            dbapi_connection.isolation_level = None
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL never corrupts and keeps every commit across a process
            # crash; only an operating-system crash can lose the latest commits.
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A unit of work that only reads takes no lock at BEGIN: in WAL mode it reads a
        # snapshot beside the writer.
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


# ------------------------------------------------------------------ errors


def _is_duplicate_key(error: IntegrityError) -> bool:
    original = error.orig
    return (
        getattr(original, "pgcode", None) == PG_UNIQUE_VIOLATION
        or getattr(original, "sqlite_errorname", None) in SQLITE_DUPLICATE_KEY_ERRORS
    )


def port_error(error: DBAPIError | PoolTimeout) -> PersistenceError:
    """The persistence port's error for a driver or pool error."""
    if isinstance(error, DBAPIError) and getattr(error.orig, "pgcode", None) in RETRYABLE_PG_CODES:
        return ConcurrencyConflict(str(error.orig).strip())
    cause = error.orig if isinstance(error, DBAPIError) else error
    return StorageUnavailable(f"{type(cause).__name__}: {str(cause).strip()}")


@contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except (DBAPIError, PoolTimeout) as error:
        raise port_error(error) from error


# ------------------------------------------------------- row translation


def _saga_row(saga: CreateOrderSaga) -> dict[str, object]:
    return {
        "id": saga.id,
        "customer_id": saga.customer_id,
        "status": saga.status.value,
        "current_step": saga.current_step.value,
        "error": saga.error,
        "order_id": saga.order_id,
        "payment_id": saga.payment_id,
        "amount_cents": saga.amount_cents,
        "currency": saga.currency,
        "order_details": saga.order_details,
        "payment_info": saga.payment_info,
        "awaiting": saga.awaiting.to_dict() if saga.awaiting is not None else None,
        "compensations": [_undo_row(undo) for undo in saga.compensations],
        "history": [entry.to_dict() for entry in saga.history],
        "cancel_requested": saga.cancel_requested,
        "ignored_events": saga.ignored_events,
        "version": saga.version,
        "created_at": saga.created_at,
        "updated_at": saga.updated_at,
        "completed_at": saga.completed_at,
        # A terminal saga still has a deadline while a clean-up runs.
        "due_at": saga.due_at,
    }


def _undo_row(undo: Undo) -> dict[str, object]:
    return {
        "compensation": undo.compensation.value,
        "resource_id": undo.resource_id,
        "status": undo.status.value,
        "cleanup": undo.cleanup,
        "reason": undo.reason,
        "outcome": undo.outcome,
    }


def _undo_from_row(value: Any) -> Undo:
    if isinstance(value, str):  # a compensation still to run, as the first schema kept it
        return Undo(Compensation(value), None)
    return Undo(
        Compensation(value["compensation"]),
        value.get("resource_id"),
        UndoStatus(value["status"]),
        bool(value.get("cleanup", False)),
        value.get("reason"),
        value.get("outcome"),
    )


def _saga_from_row(row: Row[Any]) -> CreateOrderSaga:
    saga = _saga_as_stored(row)
    if (row.compensations and all(isinstance(value, str) for value in row.compensations)) or (
        saga.status is SagaStatus.COMPENSATING and not saga.compensations
    ):
        _read_first_schema_compensations(saga)
    return saga


def _read_first_schema_compensations(saga: CreateOrderSaga) -> None:
    """The first schema kept only the compensations still to run, by name, and the running
    one in `awaiting`: name their resources and mark the running one."""
    saga.compensations = [
        replace(undo, resource_id=getattr(saga, undo.spec.undoes.id_field)) for undo in saga.compensations
    ]
    awaiting = saga.awaiting
    for undo_spec in UNDO.values():
        if awaiting is not None and awaiting.command_type == undo_spec.action.command:
            resource_id = awaiting.payload.get(undo_spec.undoes.id_field)
            saga.compensations.insert(0, Undo(undo_spec.compensation, resource_id, UndoStatus.RUNNING))


def _saga_as_stored(row: Row[Any]) -> CreateOrderSaga:
    return CreateOrderSaga(
        id=row.id,
        customer_id=row.customer_id,
        order_details=row.order_details,
        amount_cents=row.amount_cents,
        currency=row.currency,
        status=SagaStatus(row.status),
        current_step=Step(row.current_step),
        created_at=row.created_at,
        updated_at=row.updated_at,
        awaiting=Awaiting.from_dict(row.awaiting) if row.awaiting is not None else None,
        compensations=[_undo_from_row(value) for value in row.compensations],
        order_id=row.order_id,
        payment_id=row.payment_id,
        payment_info=row.payment_info,
        error=row.error,
        completed_at=row.completed_at,
        cancel_requested=row.cancel_requested,
        ignored_events=row.ignored_events,
        history=[HistoryEntry.from_dict(entry) for entry in row.history],
        version=row.version,
    )


def _outbox_entry(row: Row[*tuple[Any, ...]]) -> OutboxEntry:
    command = Command(row.command_type, row.saga_id, row.payload, row.message_id, row.created_at)
    return OutboxEntry(row.id, command, row.attempts)


ConnectionSource = Callable[[], Connection]


# ---------------------------------------------------------------- adapters


class SqlAlchemySagaRepository(SagaRepository):
    def __init__(self, connection: ConnectionSource) -> None:
        self._connection = connection

    def add(self, saga: CreateOrderSaga) -> None:
        try:
            self._connection().execute(INSERT_SAGA, _saga_row(saga))
        except IntegrityError as error:
            if _is_duplicate_key(error):
                raise DuplicateSaga(saga.id) from error
            raise port_error(error) from error
        except (DBAPIError, PoolTimeout) as error:
            raise port_error(error) from error

    def get(self, saga_id: str) -> CreateOrderSaga | None:
        with _translated_errors():
            row = self._connection().execute(SELECT_SAGA, {"saga_id": saga_id}).first()
        return _saga_from_row(row) if row is not None else None

    def save(self, saga: CreateOrderSaga) -> None:
        row = _saga_row(saga)
        # What an order is never changes after it starts: only the saga's progress is written.
        values = {name: row[name] for name in MUTABLE_SAGA_COLUMNS}
        values.update(version=saga.version + 1, match_id=saga.id, match_version=saga.version)
        with _translated_errors():
            updated = self._connection().execute(UPDATE_SAGA, values).rowcount
        if updated != 1:
            raise ConcurrencyConflict(f"saga {saga.id} is no longer at version {saga.version}")
        saga.version += 1

    def page(self, status: SagaStatus | None, limit: int, after: PageCursor | None) -> SagaPage:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        query = select(sagas).order_by(sagas.c.created_at.desc(), sagas.c.id.desc()).limit(limit + 1)
        if status is not None:
            query = query.where(sagas.c.status == status.value)
        if after is not None:
            query = query.where(
                tuple_(sagas.c.created_at, sagas.c.id)
                < tuple_(literal(after.created_at, UtcDateTime()), literal(after.saga_id, String()))
            )
        with _translated_errors():
            rows = self._connection().execute(query).all()
        found = [_saga_from_row(row) for row in rows[:limit]]
        more = len(rows) > limit
        next_cursor = PageCursor(found[-1].created_at, found[-1].id) if more else None
        return SagaPage(found, next_cursor)

    def due(self, now: datetime, limit: int) -> list[str]:
        query = select(sagas.c.id).where(sagas.c.due_at <= now).order_by(sagas.c.due_at, sagas.c.id).limit(limit)
        with _translated_errors():
            return list(self._connection().execute(query).scalars())

    def count_by_status(self) -> dict[SagaStatus, int]:
        query = select(sagas.c.status, func.count()).group_by(sagas.c.status)
        with _translated_errors():
            rows = self._connection().execute(query).all()
        counts = dict.fromkeys(SagaStatus, 0)
        for status, count in rows:
            counts[SagaStatus(status)] = count
        return counts


class SqlAlchemyOutbox(Outbox):
    def __init__(self, connection: ConnectionSource) -> None:
        self._connection = connection

    def add(self, commands: Sequence[Command], hold_until: datetime | None = None) -> None:
        if not commands:
            return
        rows = [
            {
                "message_id": command.message_id,
                "saga_id": command.saga_id,
                "command_type": command.type,
                "payload": command.payload,
                "created_at": command.timestamp,
                "attempts": 0,
                "available_at": hold_until or command.timestamp,
            }
            for command in commands
        ]
        with _translated_errors():
            self._connection().execute(INSERT_OUTBOX, rows)

    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[OutboxEntry]:
        due = (
            select(*CLAIMED_COLUMNS)
            .where(
                outbox.c.sent_at.is_(None),
                outbox.c.available_at <= now,
                or_(outbox.c.leased_until.is_(None), outbox.c.leased_until <= now),
            )
            .order_by(outbox.c.available_at, outbox.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with _translated_errors():
            connection = self._connection()
            rows = connection.execute(due).all()
            if rows:
                connection.execute(LEASE_OUTBOX, {"entry_ids": [row.id for row in rows], "until": now + lease})
        return [_outbox_entry(row) for row in rows]

    def claim_by_message_ids(self, message_ids: Sequence[str]) -> list[OutboxEntry]:
        if not message_ids:
            return []
        with _translated_errors():
            rows = self._connection().execute(CLAIM_BY_MESSAGE_IDS, {"message_ids": list(message_ids)}).all()
        return [_outbox_entry(row) for row in rows]

    def settle(self, now: datetime, delivered: Sequence[int] = (), retry: Sequence[RetryLater] = ()) -> None:
        with _translated_errors():
            connection = self._connection()
            if delivered:
                connection.execute(SETTLE_DELIVERED, {"entry_ids": list(delivered), "now": now})
            if retry:
                connection.execute(
                    SETTLE_RETRY, [{"entry_id": r.entry_id, "at": r.at, "error": r.error} for r in retry]
                )

    def awaiting_delivery(self, message_id: str) -> bool:
        with _translated_errors():
            return self._connection().execute(UNSENT_WITH_MESSAGE_ID, {"message_id": message_id}).first() is not None

    def discard_unsent(self, saga_id: str, now: datetime) -> int:
        with _translated_errors():
            return int(self._connection().execute(DISCARD_UNSENT_OF_SAGA, {"of_saga": saga_id, "now": now}).rowcount)

    def pending_count(self) -> int:
        query = select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
        with _translated_errors():
            return int(self._connection().execute(query).scalar_one())

    def purge_sent(self, sent_before: datetime, limit: int) -> int:
        with _translated_errors():
            return int(self._connection().execute(PURGE_SENT_OUTBOX, {"before": sent_before, "batch": limit}).rowcount)


class SqlAlchemyInbox(Inbox):
    def __init__(self, connection: ConnectionSource) -> None:
        self._connection = connection

    def record(self, message_id: str, saga_id: str, now: datetime) -> bool:
        connection = self._connection()
        statement = INSERT_INBOX.get(connection.dialect.name)
        if statement is None:
            raise StorageUnavailable(f"no inbox insert for the {connection.dialect.name} dialect")
        values = {"message_id": message_id, "saga_id": saga_id, "processed_at": now}
        with _translated_errors():
            return connection.execute(statement, values).rowcount == 1

    def purge(self, processed_before: datetime, limit: int) -> int:
        with _translated_errors():
            return int(self._connection().execute(PURGE_INBOX, {"before": processed_before, "batch": limit}).rowcount)


class SqlAlchemyUnitOfWork(UnitOfWork):
    """One connection and one transaction, opened on entering and closed on leaving.

    After `commit()` the same unit of work may go on: the next statement begins a new
    transaction, which leaving without another commit rolls back.
    """

    def __init__(self, engine: Engine, read_only: bool = False) -> None:
        self._engine = engine
        self._read_only = read_only
        self._open: Connection | None = None
        self.sagas = SqlAlchemySagaRepository(self._connection)
        self.outbox = SqlAlchemyOutbox(self._connection)
        self.inbox = SqlAlchemyInbox(self._connection)

    def _connection(self) -> Connection:
        if self._open is None:
            raise RuntimeError("the unit of work is used outside its `with` block")
        return self._open

    def __enter__(self) -> SqlAlchemyUnitOfWork:
        if self._open is not None:
            raise RuntimeError("the unit of work is already open")
        with _translated_errors():
            connection = self._engine.connect()
            try:
                if self._read_only:
                    connection = connection.execution_options(**{READ_ONLY_OPTION: True})
                connection.begin()
            except BaseException:
                connection.close()
                raise
        self._open = connection
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self._open = self._open, None
        if connection is None:
            return
        try:
            connection.rollback()
        except (DBAPIError, PoolTimeout):
            # The connection is gone, and its transaction with it: nothing is left to undo.
            pass
        finally:
            connection.close()

    def commit(self) -> None:
        with _translated_errors():
            self._connection().commit()

    def rollback(self) -> None:
        if self._open is None:
            return
        with _translated_errors():
            self._open.rollback()
