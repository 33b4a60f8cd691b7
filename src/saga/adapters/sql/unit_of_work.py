"""The unit of work: one connection and one transaction over sagas, outbox and inbox."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, TimeoutError as PoolTimeout

from saga.adapters.sql.engine import READ_ONLY_OPTION
from saga.adapters.sql.errors import translated_errors
from saga.adapters.sql.idempotency import SqlAlchemyIdempotencyKeys
from saga.adapters.sql.repositories import SqlAlchemyInbox, SqlAlchemyOutbox, SqlAlchemySagaRepository
from saga.ports.persistence import UnitOfWork


class SqlAlchemyUnitOfWork(UnitOfWork):
    """One connection and one transaction, opened on entering and closed on leaving.

    After `commit()` the same unit of work may go on: the next statement begins a new
    transaction, which leaving without another commit rolls back.
    """

    def __init__(self, engine: Engine, read_only: bool = False) -> None:
        self._engine = engine
        self._read_only = read_only
        self._open: Connection | None = None
        self.sagas: SqlAlchemySagaRepository = SqlAlchemySagaRepository(self._connection)
        self.outbox = SqlAlchemyOutbox(self._connection)
        self.inbox = SqlAlchemyInbox(self._connection)
        self.idempotency_keys = SqlAlchemyIdempotencyKeys(self._connection)

    def _connection(self) -> Connection:
        if self._open is None:
            raise RuntimeError("the unit of work is used outside its `with` block")
        return self._open

    def __enter__(self) -> SqlAlchemyUnitOfWork:
        if self._open is not None:
            raise RuntimeError("the unit of work is already open")
        with translated_errors():
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
        self.sagas.forget()
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
        try:
            with translated_errors():
                self._connection().commit()
        except BaseException:
            self.sagas.forget()
            raise

    def rollback(self) -> None:
        self.sagas.forget()
        if self._open is None:
            return
        with translated_errors():
            self._open.rollback()
