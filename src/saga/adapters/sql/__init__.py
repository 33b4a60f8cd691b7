"""The persistence port on SQLAlchemy Core: PostgreSQL (psycopg2) and SQLite through the same code.

- `schema`: the tables; `migrations`: the Alembic scripts that create them, and the
  functions that run them;
- `engine`: engines and their per-connection settings;
- `errors`: driver errors translated to the port's;
- `saga_rows`: the saga <-> row mapping, the only place that knows the stored shape;
- `repositories`, `unit_of_work`: the port's implementations.
"""

from saga.adapters.sql.engine import create_engine_from_url, database_url
from saga.adapters.sql.unit_of_work import SqlAlchemyUnitOfWork

__all__ = ["SqlAlchemyUnitOfWork", "create_engine_from_url", "database_url"]
