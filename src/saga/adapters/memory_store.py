"""The persistence port in memory, for tests and the single-process simulation.

It keeps the SQL adapter's promises: a unit of work's writes are invisible until it
commits, a stale version or a taken id fails, an outbox entry claimed by one unit of
work is skipped by the others (as with SKIP LOCKED) and leased once it commits. Sagas
and commands are copied in and out, so a caller's object never aliases stored state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from copy import deepcopy
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from saga.domain.messages import Command
from saga.domain.saga import CreateOrderSaga, SagaStatus
from saga.ports.persistence import (
    ConcurrencyConflict,
    DuplicateSaga,
    Inbox,
    Outbox,
    OutboxEntry,
    PageCursor,
    SagaPage,
    SagaRepository,
    UnitOfWork,
)


@dataclass(frozen=True)
class StoredOutboxEntry:
    id: int
    command: Command
    attempts: int
    available_at: datetime
    leased_until: datetime | None = None
    sent_at: datetime | None = None
    last_error: str | None = None

    def claimable(self, now: datetime) -> bool:
        return (
            self.sent_at is None
            and self.available_at <= now
            and (self.leased_until is None or self.leased_until <= now)
        )


OutboxChange = Callable[[StoredOutboxEntry], StoredOutboxEntry]


@dataclass(frozen=True)
class InboxRecord:
    saga_id: str
    processed_at: datetime


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _stored_saga(saga: CreateOrderSaga) -> CreateOrderSaga:
    """A private copy with its datetimes in UTC, as a database gives them back."""
    copy = deepcopy(saga)
    copy.created_at = _utc(copy.created_at)
    copy.updated_at = _utc(copy.updated_at)
    copy.completed_at = _utc(copy.completed_at) if copy.completed_at is not None else None
    if copy.awaiting is not None:
        copy.awaiting = replace(copy.awaiting, due_at=_utc(copy.awaiting.due_at))
    copy.history = [replace(entry, at=_utc(entry.at)) for entry in copy.history]
    return copy


def _stored_command(command: Command) -> Command:
    return replace(deepcopy(command), timestamp=_utc(command.timestamp))


def _stored_due_at(saga: CreateOrderSaga) -> datetime | None:
    return None if saga.status.is_final else saga.due_at


def _listing_key(saga: CreateOrderSaga) -> tuple[datetime, str]:
    return (saga.created_at, saga.id)


class InMemoryStore:
    """Committed state, shared by every unit of work of one process and guarded by `lock`.

    Stored sagas are never changed in place (a commit replaces them), so a reader may
    copy one after letting go of the lock.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sagas: dict[str, CreateOrderSaga] = {}
        self.due_at: dict[str, datetime] = {}
        """Deadlines of the sagas still in flight, so a sweep need not look at finished ones."""
        self.unsent: dict[int, StoredOutboxEntry] = {}
        """Outbox entries not yet sent. Sent ones are dropped: nothing in the port reads them again."""
        self.inbox: dict[str, InboxRecord] = {}
        self.claims: dict[int, InMemoryUnitOfWork] = {}
        """Outbox entries claimed by a unit of work that has not ended: row locks, in effect."""
        self._last_outbox_id = 0

    def next_outbox_id(self) -> int:
        # Like a database sequence: ids are taken at insert, not at commit.
        with self.lock:
            self._last_outbox_id += 1
            return self._last_outbox_id


class InMemoryUnitOfWork(UnitOfWork):
    """Stages its writes privately and applies them to the store atomically on commit."""

    def __init__(self, store: InMemoryStore, read_only: bool = False) -> None:
        self.store = store
        self.staged_sagas: dict[str, CreateOrderSaga] = {}
        self.added: set[str] = set()
        self.versions_read: dict[str, int] = {}
        """Per saga saved here, the committed version the change was built on."""
        self.new_entries: dict[int, StoredOutboxEntry] = {}
        self.entry_changes: list[tuple[int, OutboxChange]] = []
        """Changes to outbox entries, replayed on the latest committed entry at commit, as
        an SQL UPDATE applies to the latest row version."""
        self.claimed: set[int] = set()
        self.recorded: dict[str, InboxRecord] = {}
        self.forgotten: set[str] = set()
        """Message ids purged by this unit of work, forgotten at commit."""
        self.sagas = InMemorySagaRepository(self)
        self.outbox = InMemoryOutbox(self)
        self.inbox = InMemoryInbox(self)

    def __enter__(self) -> InMemoryUnitOfWork:
        return self

    def commit(self) -> None:
        store = self.store
        with store.lock:
            for saga_id in self.added:
                if saga_id in store.sagas:
                    raise DuplicateSaga(saga_id)
            for saga_id, version_read in self.versions_read.items():
                committed = store.sagas.get(saga_id)
                if committed is None or committed.version != version_read:
                    raise ConcurrencyConflict(f"saga {saga_id} is no longer at version {version_read}")
            for message_id in self.recorded:
                if message_id in store.inbox:
                    # Another unit of work consumed this message meanwhile. PostgreSQL would have
                    # made this one wait and then report a duplicate; a retry here sees it so.
                    raise ConcurrencyConflict(f"message {message_id} was recorded concurrently")
            for saga_id, saga in self.staged_sagas.items():
                store.sagas[saga_id] = saga
                due_at = _stored_due_at(saga)
                if due_at is None:
                    store.due_at.pop(saga_id, None)
                else:
                    store.due_at[saga_id] = due_at
            store.unsent.update(self.new_entries)
            for entry_id, change in self.entry_changes:
                entry = store.unsent.get(entry_id)
                if entry is not None:
                    store.unsent[entry_id] = change(entry)
            for entry_id in {entry_id for entry_id, _ in self.entry_changes} | set(self.new_entries):
                entry = store.unsent.get(entry_id)
                if entry is not None and entry.sent_at is not None:
                    del store.unsent[entry_id]
            store.inbox.update(self.recorded)
            for message_id in self.forgotten:
                store.inbox.pop(message_id, None)
            self._end()

    def rollback(self) -> None:
        with self.store.lock:
            self._end()

    def _end(self) -> None:
        """Releases claims and forgets staged work; the caller holds the store's lock."""
        for entry_id in self.claimed:
            if self.store.claims.get(entry_id) is self:
                del self.store.claims[entry_id]
        self.staged_sagas.clear()
        self.added.clear()
        self.versions_read.clear()
        self.new_entries.clear()
        self.entry_changes.clear()
        self.claimed.clear()
        self.recorded.clear()
        self.forgotten.clear()

    # The views below are what this unit of work sees: committed state under its own
    # staged work. The caller holds the store's lock.

    def visible_saga(self, saga_id: str) -> CreateOrderSaga | None:
        staged = self.staged_sagas.get(saga_id)
        return staged if staged is not None else self.store.sagas.get(saga_id)

    def visible_sagas(self) -> list[CreateOrderSaga]:
        return list({**self.store.sagas, **self.staged_sagas}.values())

    def visible_entries(self) -> dict[int, StoredOutboxEntry]:
        entries = {**self.store.unsent, **self.new_entries}
        for entry_id, change in self.entry_changes:
            if entry_id in entries:
                entries[entry_id] = change(entries[entry_id])
        return entries


class InMemorySagaRepository(SagaRepository):
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow
        self._lock = uow.store.lock

    def add(self, saga: CreateOrderSaga) -> None:
        copy = _stored_saga(saga)
        with self._lock:
            if self._uow.visible_saga(saga.id) is not None:
                raise DuplicateSaga(saga.id)
            self._uow.staged_sagas[saga.id] = copy
            self._uow.added.add(saga.id)

    def get(self, saga_id: str) -> CreateOrderSaga | None:
        with self._lock:
            saga = self._uow.visible_saga(saga_id)
        return deepcopy(saga)

    def save(self, saga: CreateOrderSaga) -> None:
        uow = self._uow
        copy = _stored_saga(saga)
        copy.version += 1
        with self._lock:
            current = uow.visible_saga(saga.id)
            if current is None or current.version != saga.version:
                raise ConcurrencyConflict(f"saga {saga.id} is no longer at version {saga.version}")
            if saga.id not in uow.staged_sagas:
                uow.versions_read[saga.id] = saga.version
            uow.staged_sagas[saga.id] = copy
        saga.version = copy.version

    def page(self, status: SagaStatus | None, limit: int, after: PageCursor | None) -> SagaPage:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        with self._lock:
            candidates = [
                saga
                for saga in self._uow.visible_sagas()
                if (status is None or saga.status is status)
                and (after is None or _listing_key(saga) < (after.created_at, after.saga_id))
            ]
        candidates.sort(key=_listing_key, reverse=True)
        found = deepcopy(candidates[:limit])
        next_cursor = PageCursor(found[-1].created_at, found[-1].id) if len(candidates) > limit else None
        return SagaPage(found, next_cursor)

    def due(self, now: datetime, limit: int) -> list[str]:
        uow = self._uow
        with self._lock:
            deadlines = dict(uow.store.due_at)
            for saga_id, saga in uow.staged_sagas.items():
                due_at = _stored_due_at(saga)
                if due_at is None:
                    deadlines.pop(saga_id, None)
                else:
                    deadlines[saga_id] = due_at
        passed = sorted((due_at, saga_id) for saga_id, due_at in deadlines.items() if due_at <= now)
        return [saga_id for _, saga_id in passed[:limit]]

    def count_by_status(self) -> dict[SagaStatus, int]:
        counts = dict.fromkeys(SagaStatus, 0)
        with self._lock:
            for saga in self._uow.visible_sagas():
                counts[saga.status] += 1
        return counts


class InMemoryOutbox(Outbox):
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow
        self._store = uow.store

    def add(self, commands: Sequence[Command], hold_until: datetime | None = None) -> None:
        for command in commands:
            stored = _stored_command(command)
            available_at = _utc(hold_until) if hold_until is not None else stored.timestamp
            entry = StoredOutboxEntry(self._store.next_outbox_id(), stored, 0, available_at)
            with self._store.lock:
                self._uow.new_entries[entry.id] = entry

    def claim(self, now: datetime, limit: int, lease: timedelta) -> list[OutboxEntry]:
        uow = self._uow
        leased_until = now + lease
        with self._store.lock:
            claimable = [
                entry
                for entry in uow.visible_entries().values()
                if entry.claimable(now) and self._store.claims.get(entry.id, uow) is uow
            ]
            claimable.sort(key=lambda entry: (entry.available_at, entry.id))
            claimed = claimable[:limit]
            for entry in claimed:
                uow.entry_changes.append((entry.id, lambda stored: replace(stored, leased_until=leased_until)))
                uow.claimed.add(entry.id)
                self._store.claims[entry.id] = uow
        return [OutboxEntry(entry.id, deepcopy(entry.command), entry.attempts) for entry in claimed]

    def mark_sent(self, entry_ids: Sequence[int], now: datetime) -> None:
        with self._store.lock:
            for entry_id in entry_ids:
                self._uow.entry_changes.append(
                    (entry_id, lambda stored: replace(stored, sent_at=now, leased_until=None))
                )

    def take(self, message_ids: Sequence[str]) -> set[str]:
        wanted = set(message_ids)
        uow = self._uow
        taken: set[str] = set()
        with self._store.lock:
            for entry in uow.visible_entries().values():
                if (
                    entry.sent_at is None
                    and entry.command.message_id in wanted
                    and self._store.claims.get(entry.id, uow) is uow
                ):
                    uow.claimed.add(entry.id)
                    self._store.claims[entry.id] = uow
                    taken.add(entry.command.message_id)
        return taken

    def mark_delivered(self, message_ids: Sequence[str], now: datetime) -> None:
        wanted = set(message_ids)
        with self._store.lock:
            for entry in self._uow.visible_entries().values():
                if entry.sent_at is None and entry.command.message_id in wanted:
                    self._uow.entry_changes.append(
                        (entry.id, lambda stored: replace(stored, sent_at=now, leased_until=None))
                    )

    def reschedule(self, message_ids: Sequence[str], at: datetime, error: str) -> None:
        wanted = set(message_ids)

        def due_again(stored: StoredOutboxEntry) -> StoredOutboxEntry:
            return replace(stored, available_at=_utc(at), attempts=stored.attempts + 1, last_error=error)

        with self._store.lock:
            for entry in self._uow.visible_entries().values():
                if entry.sent_at is None and entry.command.message_id in wanted:
                    self._uow.entry_changes.append((entry.id, due_again))

    def retry_later(self, entry_id: int, at: datetime, error: str) -> None:
        def put_back(stored: StoredOutboxEntry) -> StoredOutboxEntry:
            return replace(stored, available_at=at, leased_until=None, attempts=stored.attempts + 1, last_error=error)

        with self._store.lock:
            self._uow.entry_changes.append((entry_id, put_back))

    def awaiting_delivery(self, message_id: str) -> bool:
        with self._store.lock:
            return any(
                entry.sent_at is None and entry.command.message_id == message_id
                for entry in self._uow.visible_entries().values()
            )

    def discard_unsent(self, saga_id: str, now: datetime) -> int:
        with self._store.lock:
            # An entry a relay is sending stays: like a row lock, its send finishes first.
            unsent = [
                entry.id
                for entry in self._uow.visible_entries().values()
                if entry.sent_at is None
                and entry.command.saga_id == saga_id
                and self._store.claims.get(entry.id, self._uow) is self._uow
            ]
            for entry_id in unsent:
                self._uow.entry_changes.append(
                    (
                        entry_id,
                        lambda stored: replace(
                            stored, sent_at=now, leased_until=None, last_error="superseded: the saga moved on"
                        ),
                    )
                )
        return len(unsent)

    def pending_count(self) -> int:
        with self._store.lock:
            return sum(1 for entry in self._uow.visible_entries().values() if entry.sent_at is None)

    def purge_sent(self, sent_before: datetime, limit: int) -> int:
        return 0  # sent entries are dropped at commit: nothing is kept to purge


class InMemoryInbox(Inbox):
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow
        self._lock = uow.store.lock

    def record(self, message_id: str, saga_id: str, now: datetime) -> bool:
        with self._lock:
            if message_id in self._uow.recorded or message_id in self._uow.store.inbox:
                return False
            self._uow.recorded[message_id] = InboxRecord(saga_id, now)
            return True

    def purge(self, processed_before: datetime, limit: int) -> int:
        with self._lock:
            old = [
                message_id
                for message_id, record in self._uow.store.inbox.items()
                if record.processed_at < processed_before and message_id not in self._uow.forgotten
            ][:limit]
            self._uow.forgotten.update(old)
        return len(old)
