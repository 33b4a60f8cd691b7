"""The sagas, the outbox and the inbox on SQLAlchemy Core, over one connection of a unit of work."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    String,
    and_,
    bindparam,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.exc import DBAPIError, IntegrityError, TimeoutError as PoolTimeout
from sqlalchemy.sql.dml import ReturningUpdate

from saga.adapters.sql.errors import is_duplicate_key, port_error, translated_errors
from saga.adapters.sql.outbox_changes import NOTIFY
from saga.adapters.sql.saga_rows import (
    HISTORY_LENGTH,
    PROGRESS_COLUMNS,
    RESOURCE_COLUMNS,
    history_rows,
    progress_row,
    resources_beside_columns,
    resources_from_row,
    saga_from_row,
    saga_row,
    saga_select,
    saga_select_without_history,
)
from saga.adapters.sql.schema import UtcDateTime, inbox, outbox, saga_history, saga_resources, sagas
from saga.domain.messages import Command
from saga.domain.saga import CreateOrderSaga, ResourceRef, SagaStatus
from saga.domain.steps import Resource
from saga.ports.persistence import (
    ConcurrencyConflict,
    DuplicateSaga,
    Inbox,
    Outbox,
    OutboxEntry,
    PageCursor,
    ResourcesPage,
    RetryLater,
    SagaPage,
    SagaRepository,
    StorageUnavailable,
)

# Statements built once: their values arrive as execute() parameters, so SQLAlchemy
# finds each compiled form in its cache without rebuilding the statement per call.
INSERT_SAGA = sagas.insert()
SELECT_SAGAS = {dialect: saga_select(dialect) for dialect in ("postgresql", "sqlite")}
SELECT_SAGA = {dialect: query.where(sagas.c.id == bindparam("saga_id")) for dialect, query in SELECT_SAGAS.items()}
SELECT_SAGA_BATCH = {
    dialect: query.where(sagas.c.id.in_(bindparam("saga_ids", expanding=True)))
    for dialect, query in SELECT_SAGAS.items()
}
SELECT_SAGA_BATCH_WITHOUT_HISTORY = saga_select_without_history().where(
    sagas.c.id.in_(bindparam("saga_ids", expanding=True))
)
# SET names the columns given at execute(): each set of changed columns compiles once.
UPDATE_SAGA = sagas.update().where(sagas.c.id == bindparam("match_id"), sagas.c.version == bindparam("match_version"))
INSERT_HISTORY = saga_history.insert()
COUNT_HISTORY = select(func.count()).where(saga_history.c.saga_id == bindparam("saga_id"))
DELETE_HISTORY = saga_history.delete().where(saga_history.c.saga_id == bindparam("saga_id"))
INSERT_OUTBOX = outbox.insert()
# Which saga holds a resource: its own order and payment are columns, the resources only its
# compensations name are rows of `saga_resources` (each read through its own index).
SELECT_HOLDERS = union_all(
    *(
        select(
            literal_column(f"'{resource.value}'", String).label("kind"),
            sagas.c[resource.id_field].label("resource_id"),
            sagas.c.id.label("saga_id"),
        ).where(sagas.c[resource.id_field].in_(bindparam(f"{resource.value}_ids", expanding=True)))
        for resource in Resource
    ),
    select(saga_resources.c.kind, saga_resources.c.resource_id, saga_resources.c.saga_id).where(
        saga_resources.c.resource_id.in_(bindparam("any_ids", expanding=True))
    ),
)
# Two transactions on PostgreSQL could each find a resource unheld and both take it. Each asks
# under a transaction-level advisory lock per resource (two-key form, apart from the
# migration's one-key lock), all taken by one statement in ascending order, before the
# query's own statement: the second waits for the first to commit, then reads its holder.
# Taken in one order, these locks wait for no one holding a smaller one: no deadlock among
# them. SQLite's writers queue anyway.
RESOURCE_LOCK_CLASS = 0x5A6A
LOCK_RESOURCES = text(
    "SELECT count(pg_advisory_xact_lock(:lock_class, key)) FROM unnest(CAST(:keys AS integer[])) AS key"
)


def _lock_key(ref: ResourceRef) -> int:
    """A 32-bit key per resource; two resources sharing one only wait for each other."""
    digest = hashlib.blake2b(f"{ref.resource.value}:{ref.id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


# Once per (saga, resource), also when a unit of work that did not read the saga saves it.
INSERT_RESOURCE = saga_resources.insert().from_select(
    ["kind", "resource_id", "saga_id"],
    select(
        bindparam("kind", type_=String), bindparam("resource_id", type_=String), bindparam("saga_id", type_=String)
    ).where(
        ~exists().where(
            and_(
                saga_resources.c.resource_id == bindparam("resource_id", type_=String),
                saga_resources.c.kind == bindparam("kind", type_=String),
                saga_resources.c.saga_id == bindparam("saga_id", type_=String),
            )
        )
    ),
)
CLAIMED_COLUMNS = (
    outbox.c.id,
    outbox.c.available_at,
    outbox.c.message_id,
    outbox.c.saga_id,
    outbox.c.command_type,
    outbox.c.payload,
    outbox.c.created_at,
    outbox.c.attempts,
)


# A claim is one statement: it locks the entries and records them sent, returning them
# to send. SKIP LOCKED lets concurrent relays take disjoint batches without waiting for
# each other, and leaves out what a saga withdrawing its commands holds; SQLite has no
# row locks (BEGIN IMMEDIATE serialises its writers) and ignores it. RETURNING gives no
# order: the adapter sorts.
def _claim(candidates: Select[tuple[int]]) -> ReturningUpdate[Any]:
    return (
        outbox.update()
        .where(outbox.c.id.in_(candidates.with_for_update(skip_locked=True).scalar_subquery()))
        .values(sent_at=bindparam("now"))
        .returning(*CLAIMED_COLUMNS)
    )


# The candidates are read through an alias, so the subquery plainly reads its own rows.
CLAIMABLE = outbox.alias("claimable")
UNSENT_CLAIMABLE = CLAIMABLE.c.sent_at.is_(None)
CLAIM_BY_MESSAGE_IDS = _claim(
    select(CLAIMABLE.c.id).where(CLAIMABLE.c.message_id.in_(bindparam("message_ids", expanding=True)), UNSENT_CLAIMABLE)
)
CLAIM_DUE = _claim(
    select(CLAIMABLE.c.id)
    .where(UNSENT_CLAIMABLE, CLAIMABLE.c.available_at <= bindparam("now"))
    .order_by(CLAIMABLE.c.available_at, CLAIMABLE.c.id)
    .limit(bindparam("limit"))
)
PUT_BACK = (
    outbox.update()
    .where(outbox.c.id == bindparam("entry_id"))
    .values(sent_at=None, available_at=bindparam("at"), attempts=outbox.c.attempts + 1, last_error=bindparam("error"))
)
UNSENT_WITH_MESSAGE_ID = (
    select(outbox.c.id).where(outbox.c.message_id == bindparam("message_id"), outbox.c.sent_at.is_(None)).limit(1)
)
DISCARD_UNSENT_OF_SAGA = (
    outbox.update()
    .where(outbox.c.saga_id == bindparam("of_saga"), outbox.c.sent_at.is_(None))
    .values(sent_at=bindparam("now"), last_error="superseded: the saga moved on")
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
    tuple_(inbox.c.saga_id, inbox.c.message_id).in_(
        select(inbox.c.saga_id, inbox.c.message_id)
        .where(inbox.c.processed_at < bindparam("before"))
        .order_by(inbox.c.processed_at)
        .limit(bindparam("batch"))
    )
)
INSERT_INBOX = {
    # ON CONFLICT DO NOTHING: a duplicate leaves the transaction usable (a failed INSERT
    # would abort it on PostgreSQL), and a concurrent duplicate waits for the first to
    # commit and then counts as a duplicate.
    "postgresql": postgresql.insert(inbox).on_conflict_do_nothing(index_elements=["saga_id", "message_id"]),
    "sqlite": sqlite.insert(inbox).on_conflict_do_nothing(index_elements=["saga_id", "message_id"]),
}

INSERT_INBOX_RETURNING = {
    # One statement for a batch: the pairs it returns are the new ones; the rest were consumed before.
    dialect: statement.returning(inbox.c.saga_id, inbox.c.message_id)
    for dialect, statement in INSERT_INBOX.items()
}


def _outbox_entry(row: Row[*tuple[Any, ...]]) -> OutboxEntry:
    command = Command(row.command_type, row.saga_id, row.payload, row.message_id, row.created_at)
    return OutboxEntry(row.id, command, row.attempts)


_HOLDING_COLUMNS = ("order_id", "payment_id", "compensations")
"""The columns `resources_beside_columns` reads."""

ConnectionSource = Callable[[], Connection]
"""The unit of work's open connection; raises when used outside its block."""


@dataclass(frozen=True)
class _Stored:
    """What this unit of work knows is stored for a saga at `version`."""

    version: int
    progress: dict[str, Any]
    history_length: int
    """How many of the saga's history entries (in memory) are stored."""
    history_base: int = 0
    """Stored entries before the first one in memory: a saga read without its history has them all there."""


@dataclass(frozen=True)
class _Change:
    """What one save of a saga writes."""

    values: dict[str, Any]
    """The UPDATE's parameters: the changed columns, the new version, and the version it must match."""
    history: list[dict[str, Any]]
    held: set[ResourceRef]
    """Resources beside its columns the saga came to hold."""
    progress: dict[str, Any]
    """Every progress column as written, remembered once the save succeeded."""


class SqlAlchemySagaRepository(SagaRepository):
    """Writes a saga's row once, then per save only the columns that changed and the
    history entries it gained; a saga reads back in one statement."""

    def __init__(self, connection: ConnectionSource) -> None:
        self._connection = connection
        self._stored: dict[str, _Stored] = {}

    def forget(self) -> None:
        """Drops what it knew of stored rows: the transaction that held them rolled back."""
        self._stored.clear()

    def add(self, saga: CreateOrderSaga) -> None:
        self.add_many([saga])

    def add_many(self, sagas: Sequence[CreateOrderSaga]) -> None:
        # One INSERT per table for them all: executemany, which SQLAlchemy sends as one
        # multi-row statement ("insertmanyvalues").
        if not sagas:
            return
        rows = [saga_row(saga) for saga in sagas]
        history = [entry for saga in sagas for entry in history_rows(saga.id, saga.history, 0)]
        try:
            connection = self._connection()
            connection.execute(INSERT_SAGA, rows if len(rows) > 1 else rows[0])
            if history:
                connection.execute(INSERT_HISTORY, history if len(history) > 1 else history[0])
            self._hold(connection, [(row["id"], resources_beside_columns(row)) for row in rows])
        except IntegrityError as error:
            if is_duplicate_key(error):
                ids = ", ".join(saga.id for saga in sagas)
                raise DuplicateSaga(ids if len(sagas) == 1 else f"one of {ids}") from error
            raise port_error(error) from error
        except (DBAPIError, PoolTimeout) as error:
            raise port_error(error) from error
        for saga, row in zip(sagas, rows, strict=True):
            self._remember(saga, {name: row[name] for name in PROGRESS_COLUMNS})

    def get(self, saga_id: str) -> CreateOrderSaga | None:
        with translated_errors():
            connection = self._connection()
            row = connection.execute(SELECT_SAGA[connection.dialect.name], {"saga_id": saga_id}).first()
        return self._loaded(row) if row is not None else None

    def get_many(self, saga_ids: Sequence[str], history: bool = True) -> dict[str, CreateOrderSaga]:
        wanted = list(dict.fromkeys(saga_ids))
        if not wanted:
            return {}
        with translated_errors():
            connection = self._connection()
            if history:
                rows = connection.execute(SELECT_SAGA_BATCH[connection.dialect.name], {"saga_ids": wanted}).all()
            else:
                rows = connection.execute(SELECT_SAGA_BATCH_WITHOUT_HISTORY, {"saga_ids": wanted}).all()
        loaded = (self._loaded(row) for row in rows)
        return {saga.id: saga for saga in loaded}

    def save(self, saga: CreateOrderSaga) -> None:
        self.save_many([saga])

    def save_many(self, sagas: Sequence[CreateOrderSaga]) -> None:
        # Sagas that changed the same columns are updated by one executemany (one statement
        # for SQLAlchemy to prepare; the driver checks every row's version), their history
        # rows inserted by another.
        updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        with translated_errors():
            connection = self._connection()
            changes = [self._changes(connection, saga) for saga in sagas]
            for change in changes:
                updates.setdefault(tuple(change.values), []).append(change.values)
            for group in updates.values():
                if connection.execute(UPDATE_SAGA, group if len(group) > 1 else group[0]).rowcount != len(group):
                    stale = ", ".join(f"{values['match_id']} at version {values['match_version']}" for values in group)
                    raise ConcurrencyConflict(f"a saga is no longer at the version read: {stale}")
            added = [row for change in changes for row in change.history]
            if added:
                connection.execute(INSERT_HISTORY, added if len(added) > 1 else added[0])
            self._hold(connection, [(saga.id, change.held) for saga, change in zip(sagas, changes, strict=True)])
        for saga, change in zip(sagas, changes, strict=True):
            saga.version += 1
            base = self._stored[saga.id].history_base if saga.id in self._stored else 0
            self._remember(saga, change.progress, base)

    def _changes(self, connection: Connection, saga: CreateOrderSaga) -> _Change:
        """What saving the saga writes: its changed columns (its version checked), its new
        history rows, and the resources beside its columns it came to hold."""
        progress = progress_row(saga)
        known = self._stored.get(saga.id)
        if known is not None and known.version != saga.version:
            if known.history_base:
                # Read without its history: only the version read can say which entries are new.
                raise ConcurrencyConflict(f"saga {saga.id} is no longer at version {saga.version}")
            known = None
        changed = progress if known is None else {k: v for k, v in progress.items() if known.progress.get(k) != v}
        held: set[ResourceRef] = set()
        if known is None or any(name in changed for name in _HOLDING_COLUMNS):
            held = resources_beside_columns(progress)
            if known is not None:
                held -= resources_beside_columns(known.progress)
        values = {**changed, "version": saga.version + 1, "match_id": saga.id, "match_version": saga.version}
        if known is not None:
            new = saga.history[known.history_length :]
            return _Change(
                values, history_rows(saga.id, new, known.history_base + known.history_length), held, progress
            )
        stored_length = connection.execute(COUNT_HISTORY, {"saga_id": saga.id}).scalar_one()
        if len(saga.history) < stored_length:
            # History only grows; one that shrank is stored anew.
            connection.execute(DELETE_HISTORY, {"saga_id": saga.id})
            stored_length = 0
        return _Change(values, history_rows(saga.id, saga.history[stored_length:], stored_length), held, progress)

    @staticmethod
    def _hold(connection: Connection, held: Sequence[tuple[str, Collection[ResourceRef]]]) -> None:
        """Records that each saga (by id) holds its resources beside its own order and payment."""
        rows = [
            {"kind": ref.resource.value, "resource_id": ref.id, "saga_id": saga_id}
            for saga_id, resources in held
            for ref in resources
        ]
        if rows:
            connection.execute(INSERT_RESOURCE, rows)

    def holders(self, resources: Collection[ResourceRef]) -> dict[ResourceRef, str]:
        wanted = set(resources)
        if not wanted:
            return {}
        values: dict[str, list[str]] = {f"{resource.value}_ids": [] for resource in Resource}
        for ref in wanted:
            values[f"{ref.resource.value}_ids"].append(ref.id)
        values["any_ids"] = sorted({ref.id for ref in wanted})
        with translated_errors():
            connection = self._connection()
            if connection.dialect.name == "postgresql":
                keys = sorted({_lock_key(ref) for ref in wanted})
                connection.execute(LOCK_RESOURCES, {"lock_class": RESOURCE_LOCK_CLASS, "keys": keys})
            rows = connection.execute(SELECT_HOLDERS, values).all()
        found: dict[ResourceRef, str] = {}
        for kind, resource_id, saga_id in rows:
            ref = ResourceRef(Resource(kind), resource_id)
            if ref in wanted:
                found.setdefault(ref, saga_id)
        return found

    def page(
        self, status: SagaStatus | None, limit: int, after: PageCursor | None, unconfirmed_cleanup: bool = False
    ) -> SagaPage:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        connection = self._connection()
        newest_first = (sagas.c.created_at.desc(), sagas.c.id.desc())
        query = SELECT_SAGAS[connection.dialect.name].order_by(*newest_first).limit(limit + 1)
        if status is not None:
            query = query.where(sagas.c.status == status.value)
        if unconfirmed_cleanup:
            query = query.where(sagas.c.cleanup_unconfirmed)
        if after is not None:
            query = query.where(
                tuple_(sagas.c.created_at, sagas.c.id)
                < tuple_(literal(after.created_at, UtcDateTime()), literal(after.saga_id, String()))
            )
        with translated_errors():
            rows = connection.execute(query).all()
        found = [self._loaded(row) for row in rows[:limit]]
        more = len(rows) > limit
        next_cursor = PageCursor(found[-1].created_at, found[-1].id) if more else None
        return SagaPage(found, next_cursor)

    def _loaded(self, row: Row[Any]) -> CreateOrderSaga:
        saga = saga_from_row(row)
        values = row._mapping
        base = values.get(HISTORY_LENGTH, 0)
        self._remember(saga, {name: values[name] for name in PROGRESS_COLUMNS}, base)
        return saga

    def _remember(self, saga: CreateOrderSaga, progress: dict[str, Any], history_base: int = 0) -> None:
        self._stored[saga.id] = _Stored(saga.version, progress, len(saga.history), history_base)

    def due(self, now: datetime, limit: int) -> list[str]:
        query = select(sagas.c.id).where(sagas.c.due_at <= now).order_by(sagas.c.due_at, sagas.c.id).limit(limit)
        with translated_errors():
            return list(self._connection().execute(query).scalars())

    def search(self, term: str, limit: int) -> list[CreateOrderSaga]:
        if not _storable(term):
            return []  # no saga holds it, and PostgreSQL refuses it even as a query's parameter
        # Customer and order ids have no index: an operator's search reads the table.
        connection = self._connection()
        query = (
            SELECT_SAGAS[connection.dialect.name]
            .where(or_(sagas.c.id == term, sagas.c.customer_id == term, sagas.c.order_id == term))
            .order_by(sagas.c.created_at.desc(), sagas.c.id.desc())
            .limit(limit)
        )
        with translated_errors():
            rows = connection.execute(query).all()
        return [self._loaded(row) for row in rows]

    def count_by_status(self) -> dict[SagaStatus, int]:
        query = select(sagas.c.status, func.count()).group_by(sagas.c.status)
        with translated_errors():
            rows = self._connection().execute(query).all()
        counts = dict.fromkeys(SagaStatus, 0)
        for status, count in rows:
            counts[SagaStatus(status)] = count
        return counts

    def resources_page(self, limit: int, after: PageCursor | None) -> ResourcesPage:
        # The audit reads every saga: its few columns, never the history.
        if limit < 1:
            raise ValueError("limit must be at least 1")
        columns = [sagas.c[name] for name in RESOURCE_COLUMNS]
        query = select(*columns).order_by(sagas.c.created_at.desc(), sagas.c.id.desc()).limit(limit + 1)
        if after is not None:
            query = query.where(
                tuple_(sagas.c.created_at, sagas.c.id)
                < tuple_(literal(after.created_at, UtcDateTime()), literal(after.saga_id, String()))
            )
        with translated_errors():
            rows = self._connection().execute(query).all()
        found = [resources_from_row(row) for row in rows[:limit]]
        more = len(rows) > limit
        next_cursor = PageCursor(found[-1].created_at, found[-1].id) if more else None
        return ResourcesPage(found, next_cursor)


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
        with translated_errors():
            connection = self._connection()
            connection.execute(INSERT_OUTBOX, rows)
            if hold_until is None and connection.dialect.name == "postgresql":
                # Due at once and no relay of ours is told: the other processes' relays are.
                connection.execute(NOTIFY)

    def claim_due(self, now: datetime, limit: int) -> list[OutboxEntry]:
        with translated_errors():
            rows = self._connection().execute(CLAIM_DUE, {"now": now, "limit": limit}).all()
        return [_outbox_entry(row) for row in sorted(rows, key=lambda row: (row.available_at, row.id))]

    def claim_by_message_ids(self, message_ids: Sequence[str], now: datetime) -> list[OutboxEntry]:
        if not message_ids:
            return []
        with translated_errors():
            rows = (
                self._connection().execute(CLAIM_BY_MESSAGE_IDS, {"message_ids": list(message_ids), "now": now}).all()
            )
        return [_outbox_entry(row) for row in sorted(rows, key=lambda row: row.id)]

    def retry(self, later: Sequence[RetryLater]) -> None:
        if not later:
            return
        with translated_errors():
            self._connection().execute(
                PUT_BACK, [{"entry_id": r.entry_id, "at": r.at, "error": r.error} for r in later]
            )

    def awaiting_delivery(self, message_id: str) -> bool:
        with translated_errors():
            return self._connection().execute(UNSENT_WITH_MESSAGE_ID, {"message_id": message_id}).first() is not None

    def discard_unsent(self, saga_id: str, now: datetime) -> int:
        with translated_errors():
            return int(self._connection().execute(DISCARD_UNSENT_OF_SAGA, {"of_saga": saga_id, "now": now}).rowcount)

    def pending_count(self) -> int:
        query = select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
        with translated_errors():
            return int(self._connection().execute(query).scalar_one())

    def oldest_pending_at(self) -> datetime | None:
        query = select(func.min(outbox.c.created_at)).where(outbox.c.sent_at.is_(None))
        with translated_errors():
            oldest: datetime | None = self._connection().execute(query).scalar_one()
        return oldest

    def purge_sent(self, sent_before: datetime, limit: int) -> int:
        with translated_errors():
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
        with translated_errors():
            return connection.execute(statement, values).rowcount == 1

    def record_many(self, messages: Sequence[tuple[str, str]], now: datetime) -> set[tuple[str, str]]:
        pairs = list(dict.fromkeys(messages))
        if not pairs:
            return set()
        connection = self._connection()
        statement = INSERT_INBOX_RETURNING.get(connection.dialect.name)
        if statement is None:
            raise StorageUnavailable(f"no inbox insert for the {connection.dialect.name} dialect")
        values = [{"saga_id": saga_id, "message_id": message_id, "processed_at": now} for saga_id, message_id in pairs]
        with translated_errors():
            rows = connection.execute(statement, values).all()
        return {(row.saga_id, row.message_id) for row in rows}

    def purge(self, processed_before: datetime, limit: int) -> int:
        with translated_errors():
            return int(self._connection().execute(PURGE_INBOX, {"before": processed_before, "batch": limit}).rowcount)


def _storable(text: str) -> bool:
    """False for text with a NUL or half a surrogate pair, which no database here stores
    (docs/contract.md, "Message envelope")."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text
