"""Real servers for the integration tests, started from pip-installed wheels when none is given."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tests.support.postgres import embedded_postgres

from saga.adapters.sql import database_url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database URL: SAGA_TEST_DATABASE_URL, or a throwaway embedded server's."""
    given = os.environ.get("SAGA_TEST_DATABASE_URL")
    if given:
        yield given
        return
    with embedded_postgres() as server:
        server.psql("CREATE DATABASE saga_test;")
        yield server.get_uri("saga_test")


@pytest.fixture
def fresh_database_url(postgres_url: str) -> Iterator[str]:
    """A new, empty database on the test server, dropped after the test."""
    name = f"saga_{uuid.uuid4().hex}"
    admin = create_engine(database_url(postgres_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        # Same spelling as the server's URL (a bare postgresql:// stays bare), as users write it.
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


# The Kafka broker fixture lives with its helpers in tests/support/kafka.py.
from tests.support.kafka import kafka_bootstrap  # noqa: E402, F401
