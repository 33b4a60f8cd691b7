"""Database work per saga: commits, statements by kind, and bytes of parameters sent.

Runs sagas to completion in one process (simulated participants, in-memory transport,
no background threads) against a SQLite file or the given PostgreSQL URL, counting
what the engine sends. It measures the storage's cost per saga, not speed.

    python -m benchmarks.writes_per_saga [--sagas 200] [--postgres | --database-url URL]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from tests.support.postgres import embedded_postgres

from saga.adapters.sql.migrations import upgrade
from saga.domain.saga import SagaStatus
from saga.entrypoints.config import Settings
from saga.entrypoints.consumers import MemoryEventConsumer
from saga.entrypoints.container import Container

ORDER = {
    "foodItems": [
        {"name": "Burger", "price": "12.99", "quantity": 2},
        {"name": "Fries", "price": "3.50", "quantity": 1},
    ],
    "deliveryFee": "2.00",
    "deliveryLocation": "Main Street 1",
}


def count_work(engine: Engine, counts: Counter[str]) -> None:
    def on_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper()
        counts[f"statements {verb}"] += 1
        counts["statements"] += 1
        counts["parameter bytes"] += len(str(parameters))
        if executemany:
            counts["executemany"] += 1

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "commit", lambda connection: counts.update(["commits"]))


def measure(database_url: str, sagas: int, fail_step: str | None = None) -> dict[str, float]:
    upgrade(database_url)
    settings = Settings(database_url=database_url, transport="memory", simulate_fail_step=fail_step)
    container = Container(settings=settings)
    engine = container.engine()
    if engine is None:
        raise ValueError(f"writes are counted on a SQL database, not {database_url}")
    orchestrator = container.orchestrator()
    relay = container.relay()
    consumer = MemoryEventConsumer(container.memory_transport(), container.intake())
    counts: Counter[str] = Counter()
    count_work(engine, counts)
    ids = []
    for _ in range(sagas):
        ids.append(orchestrator.start("customer-1", ORDER).id)
        # As the worker does: this process's fresh commands at once, replies as they come.
        while relay.send_fresh() or consumer.drain():
            pass
    measured = dict(counts)
    statuses = Counter(saga.status for saga in map(orchestrator.get, ids) if saga is not None)
    engine.dispose()
    expected = SagaStatus.COMPLETED if fail_step is None else SagaStatus.FAILED
    if statuses != {expected: sagas}:
        raise SystemExit(f"not every saga ended {expected}: {statuses}")
    return {name: round(value / sagas, 2) for name, value in sorted(measured.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, default=200)
    parser.add_argument("--database-url", help="default: a new SQLite file")
    parser.add_argument("--fail-step", help="a simulated step that fails, e.g. START_TIMER (sagas then undo)")
    parser.add_argument("--postgres", action="store_true", help="start an embedded PostgreSQL and use it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, ExitStack() as stack:
        url = args.database_url or f"sqlite:///{Path(directory) / 'saga.db'}"
        if args.postgres:
            server = stack.enter_context(embedded_postgres(Path(directory)))
            server.psql("CREATE DATABASE saga;")
            url = server.get_uri("saga")
        per_saga = measure(url, args.sagas, args.fail_step)
    summary = {"database": url.split(":", 1)[0], "sagas": args.sagas, "fail_step": args.fail_step}
    print(json.dumps({**summary, "per_saga": per_saga}, indent=2))


if __name__ == "__main__":
    main()
