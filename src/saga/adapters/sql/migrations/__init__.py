"""Schema migrations, run from Python: the Alembic scripts (`env.py`, `versions/`) ship in
this package, beside the adapter whose tables they create; there is no alembic.ini.

The schema comes only from these migrations; nothing calls `metadata.create_all`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Alembic announces each of its built-in plugins at INFO as it loads them: lines that
# would open every start of the service and say nothing about the database.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from sqlalchemy import Connection, Engine, text  # noqa: E402
from sqlalchemy.exc import DBAPIError  # noqa: E402

from saga.adapters.sql.engine import create_engine_from_url, database_url  # noqa: E402
from saga.adapters.sql.errors import port_error  # noqa: E402
from saga.ports.persistence import StorageUnavailable  # noqa: E402

MIGRATIONS_DIRECTORY = Path(__file__).resolve().parent
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
    """The revision the database is at; None when it was never migrated.

    Only looks: a SQLite file that does not exist is not created but raises
    StorageUnavailable, as does a database that cannot be reached.
    """
    if isinstance(database, str):
        _require_sqlite_file(database)
    with _engine(database) as engine:
        try:
            with engine.connect() as connection:
                return MigrationContext.configure(connection).get_current_revision()
        except DBAPIError as error:
            raise port_error(error) from error


def _require_sqlite_file(url: str) -> None:
    parsed = database_url(url)
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:" or path.startswith("file:"):
        return
    if not Path(path).is_file():
        raise StorageUnavailable(f"no SQLite database at {path}; `saga db upgrade` creates one")
