"""What an orchestrator process starts and stops: the container's resources.

Each function here is a `providers.Resource` generator: the code before `yield` starts
the resource, the code after it stops it. `Container.init_resources()` runs the first
halves, `shutdown_resources()` the second halves in reverse order of dependency.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

from sqlalchemy import Engine, event

from saga.adapters.sql import create_engine_from_url
from saga.entrypoints.worker import BackgroundWorker
from saga.ports.messaging import CommandPublisher
from saga.service_layer.backoff import Backoff, Outage
from saga.service_layer.metrics import Metrics

log = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "database unavailable"


def database_engine(url: str, uses_sql: bool, metrics: Metrics) -> Iterator[Engine | None]:
    """The database engine (None for `memory://`), counting commits into the process's
    metrics (`db_commits`); disposed, closing its pooled connections, at shutdown."""
    if not uses_sql:
        yield None
        return
    engine = create_engine_from_url(url)
    event.listen(engine, "commit", lambda connection: metrics.count("db_commits"))
    try:
        yield engine
    finally:
        engine.dispose()


def opened_publisher(publisher: CommandPublisher) -> Iterator[CommandPublisher]:
    """The transport's publisher, closed (its connections released) at shutdown."""
    try:
        yield publisher
    finally:
        publisher.close()


class SchemaAtStart:
    """Brings the database schema to the code's revision at start; while the database
    cannot be reached it goes on trying in a background thread with the shared capped
    backoff, so a process started during a database outage serves /healthz at once and
    becomes ready when the database answers. Work that needs the schema waits for it
    through `when_ready`.
    """

    def __init__(self, engine: Engine | None, migrate: bool, retry_max_seconds: float) -> None:
        self._engine = engine
        self._migrate = migrate
        self._retry_max_seconds = retry_max_seconds
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def problem(self) -> str | None:
        """None once the schema is in place; else what /readyz says ("database unavailable")."""
        return None if self._ready.is_set() else DATABASE_UNAVAILABLE

    def when_ready(self, callback: Callable[[], None]) -> None:
        """Calls `callback` once the schema is in place: at once if it is, else from the
        migrating thread (never after `stop`)."""
        with self._lock:
            if not self._ready.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def start(self) -> None:
        """Migrates at once when the database answers (the usual start, ready on return);
        otherwise goes on trying in a background thread and returns."""
        if not self._migrate or self._engine is None:
            self._became_ready()
            return
        backoff = Backoff(self._retry_max_seconds)
        outage = Outage("database migration at start (DATABASE_URL)", log)
        pause = self._attempt(self._engine, backoff, outage)
        if pause is None:
            return
        self._thread = threading.Thread(
            target=self._retry, args=(self._engine, backoff, outage, pause), name="saga-schema-migration", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _retry(self, engine: Engine, backoff: Backoff, outage: Outage, pause: float) -> None:
        while not self._stop.wait(pause):
            next_pause = self._attempt(engine, backoff, outage)
            if next_pause is None:
                return
            pause = next_pause

    def _attempt(self, engine: Engine, backoff: Backoff, outage: Outage) -> float | None:
        """One try: None once the schema is in place, else the pause before the next."""
        from saga.adapters.sql.migrations import upgrade

        try:
            upgrade(engine)
        except Exception as error:  # unreachable (StorageUnavailable) or a fault, logged once per outage
            pause = backoff.next_pause()
            outage.failed(error, pause)
            return pause
        outage.succeeded()
        self._became_ready()
        return None

    def _became_ready(self) -> None:
        with self._lock:
            self._ready.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            if not self._stop.is_set():
                callback()


def migrated_schema(engine: Engine | None, migrate: bool, retry_max_seconds: float) -> Iterator[SchemaAtStart]:
    schema = SchemaAtStart(engine, migrate, retry_max_seconds)
    schema.start()
    try:
        yield schema
    finally:
        schema.stop()


def running_worker(worker: BackgroundWorker, schema: SchemaAtStart, relay_only: bool) -> Iterator[BackgroundWorker]:
    """The background loops, started once the schema is in place (with `relay_only`, just the
    relay: an API-only process sends what it commits), stopped at shutdown."""
    schema.when_ready(lambda: worker.start(relay_only=relay_only))
    try:
        yield worker
    finally:
        schema.stop()  # no start after this point
        worker.stop()
