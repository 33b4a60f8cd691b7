"""Driver and pool errors become the persistence port's errors, and only those leave the adapter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, IntegrityError, TimeoutError as PoolTimeout

from saga.ports.persistence import ConcurrencyConflict, PersistenceError, StorageUnavailable

# PostgreSQL aborts one side of a deadlock or a serialization failure; retrying it is safe.
RETRYABLE_PG_CODES = frozenset({"40001", "40P01"})
SQLITE_DUPLICATE_KEY_ERRORS = frozenset({"SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_UNIQUE"})
PG_UNIQUE_VIOLATION = "23505"


def is_duplicate_key(error: IntegrityError) -> bool:
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
def translated_errors() -> Iterator[None]:
    try:
        yield
    except (DBAPIError, PoolTimeout) as error:
        raise port_error(error) from error
