"""Word between processes that commands any relay may send were committed: PostgreSQL LISTEN/NOTIFY.

A process whose own relay sends what it commits holds its commands back from the
other relays for a while (`hold_until`), and says nothing. A process without a
relay writes them due at once; `SqlAlchemyOutbox.add` then sends a NOTIFY on the
channel below in the same transaction, which PostgreSQL delivers to the listeners
when, and only if, the transaction commits. A relay that listens claims them at
once instead of at its next poll. SQLite and the in-memory store have no such word:
their relays poll.
"""

from __future__ import annotations

import select
import threading
from collections.abc import Callable

import psycopg2
from sqlalchemy import Engine, text

from saga.ports.persistence import OutboxChanges, StorageUnavailable

CHANNEL = "saga_outbox"
NOTIFY = text(f"NOTIFY {CHANNEL}")
"""Sent in a transaction that wrote commands due at once; PostgreSQL folds repeats within one transaction."""
STOP_CHECK_SECONDS = 0.2
"""How long a listener waits on its socket before it looks whether it should stop."""


class PostgresOutboxChanges(OutboxChanges):
    """Listens on a connection of its own, outside the engine's pool, in autocommit."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def listen(self, stop: threading.Event, changed: Callable[[], None]) -> None:
        try:
            args, options = self._engine.dialect.create_connect_args(self._engine.url)
            connection = psycopg2.connect(*args, **options)
        except psycopg2.Error as error:
            raise _unavailable(error) from error
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f"LISTEN {CHANNEL}")
            changed()  # what was committed before the LISTEN is in the outbox already
            while not stop.is_set():
                readable, _, _ = select.select([connection], [], [], STOP_CHECK_SECONDS)
                if not readable:
                    continue
                connection.poll()
                if connection.notifies:
                    connection.notifies.clear()
                    changed()
        except psycopg2.Error as error:
            raise _unavailable(error) from error
        finally:
            connection.close()


def _unavailable(error: psycopg2.Error) -> StorageUnavailable:
    return StorageUnavailable(f"outbox listener: {type(error).__name__}: {str(error).strip()}")


def outbox_changes_for(engine: Engine | None) -> OutboxChanges | None:
    """The word between processes the store offers: PostgreSQL's, or None (the relay polls)."""
    if engine is None or engine.dialect.name != "postgresql":
        return None
    return PostgresOutboxChanges(engine)
