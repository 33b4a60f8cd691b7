"""Engines for PostgreSQL (psycopg2) and SQLite files, set up for several threads writing at once."""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from saga.adapters.envelope import encode_json

SQLITE_BUSY_TIMEOUT_SECONDS = 30.0
READ_ONLY_OPTION = "saga_read_only"
"""Execution option of a connection whose unit of work promised to write nothing."""


def database_url(url: str) -> URL:
    """The URL as SQLAlchemy should read it: a bare `postgresql://` means psycopg2, our driver.

    SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3, which is not installed; the
    seed's DATABASE_URL (and Heroku-style `postgres://`) are written that way.
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


_LONG_DIGITS = re.compile(r"\d{19}")
_LONG_DIGITS_BYTES = re.compile(rb"\d{19}")


def decode_stored_json(text: str | bytes) -> Any:
    """The value a JSON column holds, exactly as the standard library reads it, faster.

    orjson reads it (reading sagas is on every event's path), except where the two would
    differ: text with 19 digits in a row (an integer that may not fit 64 bits, which orjson
    reads as a float) and what orjson refuses (`NaN` or `Infinity` written before
    non-finite numbers were refused, lone surrogates) go to the standard library.
    """
    long_digits = _LONG_DIGITS_BYTES if isinstance(text, bytes) else _LONG_DIGITS
    if long_digits.search(text) is None:  # type: ignore[arg-type]  # the pattern matches the text's type
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def create_engine_from_url(url: str, **kw: Any) -> Engine:
    """An engine for PostgreSQL or a SQLite file, set up for several threads writing at once."""
    parsed = database_url(url)
    kw.setdefault("json_serializer", encode_json)  # never Infinity or NaN in a JSON column
    kw.setdefault("json_deserializer", decode_stored_json)
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
