"""Alembic environment, kept inside the package so an installed `saga` can migrate its database.

`saga.adapters.sql.migrations` hands over an open connection in `config.attributes["connection"]`;
the `alembic` command line may instead give a URL as `sqlalchemy.url`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from saga.adapters.sql.engine import create_engine_from_url, database_url
from saga.adapters.sql.schema import metadata

config = context.config


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters tables by copying them; batch mode writes later migrations that way.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection in config.attributes and no sqlalchemy.url to connect to")
    return url


def run_online() -> None:
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = create_engine_from_url(_url())
    try:
        with engine.begin() as opened:
            _migrate(opened)
    finally:
        engine.dispose()


def run_offline() -> None:
    """Writes the SQL instead of running it (`alembic upgrade --sql`)."""
    context.configure(url=database_url(_url()), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
