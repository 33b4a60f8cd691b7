"""Schema migrations, run from Python: the Alembic scripts ship inside the package, no alembic.ini.

The schema comes only from these migrations; nothing calls `metadata.create_all`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from saga.adapters.sqlalchemy_store import create_engine_from_url, port_error

MIGRATIONS_DIRECTORY = Path(__file__).resolve().parent.parent / "migrations"
# Any constant shared by every process of this service: replicas starting together
# take turns on PostgreSQL instead of racing to create the same tables.
MIGRATION_LOCK_KEY = 0x5A6A_0001


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIRECTORY))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The revision the code expects the database to be at."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


@contextmanager
def _engine(database: str | Engine) -> Iterator[Engine]:
    if isinstance(database, Engine):
        yield database
        return
    engine = create_engine_from_url(database)
    try:
        yield engine
    finally:
        engine.dispose()


def upgrade(database: str | Engine, revision: str = "head") -> None:
    """Migrates the database (a URL or an engine) to `revision`, in one transaction.

    Raises StorageUnavailable when the database cannot be reached.
    """
    with _engine(database) as engine:
        try:
            with engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                command.upgrade(alembic_config(connection), revision)
        except DBAPIError as error:
            raise port_error(error) from error


def current_revision(database: str | Engine) -> str | None:
    """The revision the database is at; None when it was never migrated."""
    with _engine(database) as engine:
        try:
            with engine.connect() as connection:
                return MigrationContext.configure(connection).get_current_revision()
        except DBAPIError as error:
            raise port_error(error) from error
