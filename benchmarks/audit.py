"""How long `saga audit` takes on many sagas: `python -m benchmarks.audit [--sagas 100000] [--sqlite]`.

Writes N sagas (80% COMPLETED with a live order and an authorized payment, 20% FAILED
with a cancelled order; every 1000th FAILED saga leaves its order live) into a fresh
embedded PostgreSQL (or SQLite) database and a JSON Lines ledger beside them, half of
the payments without a saga id (joined through the order). Then it runs the audit as
`saga audit` does (sagas page by page through the persistence port, the ledger row by
row) and prints the time, the rows per second and the process's peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support.postgres import embedded_postgres

from saga.adapters.ledger_files import read_ledger
from saga.adapters.sql.migrations import upgrade
from saga.domain.policy import SagaPolicy
from saga.domain.saga import CreateOrderSaga, HistoryEntry, HistoryKind, SagaStatus
from saga.entrypoints.config import Settings
from saga.entrypoints.container import build_container
from saga.service_layer.audit import DEFAULT_PAGE_SIZE, audit, stored_sagas

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
BATCH = 1000
POLICY = SagaPolicy()


def realistic_history(saga: CreateOrderSaga, entries: int) -> None:
    """A completed saga's history is about a dozen entries: each command, its reply, the status changes."""
    first = saga.history[0]
    kinds = (HistoryKind.COMMAND, HistoryKind.EVENT)
    saga.history = [
        HistoryEntry(first.at + timedelta(milliseconds=i), kinds[i % 2], f"entry_{i}", str(uuid.uuid4()))
        for i in range(entries)
    ]


def populate(database_url: str, ledger: Path, count: int, history: int) -> int:
    """Writes `count` sagas and their ledger; returns how many disagreements were planted."""
    container = build_container(Settings(database_url=database_url, transport="memory"))
    planted = 0
    with ledger.open("w", encoding="utf-8") as out:
        for start in range(0, count, BATCH):
            with container.unit_of_work() as uow:
                for index in range(start, min(start + BATCH, count)):
                    saga, _ = CreateOrderSaga.start(
                        str(uuid.uuid4()),
                        f"cust_{index}",
                        {"foodItems": [{"name": "Burger", "price": 12.99, "quantity": 1}]},
                        1299,
                        "USD",
                        T0 + timedelta(milliseconds=index),
                        POLICY,
                    )
                    saga.order_id = str(uuid.uuid4())
                    completed = index % 5 != 0
                    saga.status = SagaStatus.COMPLETED if completed else SagaStatus.FAILED
                    order_status = "CREATED" if completed else "CANCELLED"
                    if not completed and index % 1000 == 0:
                        order_status = "PENDING"
                        planted += 1
                    rows = [{"saga_id": saga.id, "kind": "order", "id": saga.order_id, "status": order_status}]
                    if completed:
                        saga.payment_id = f"pi_{uuid.uuid4().hex[:24]}"
                        rows.append(
                            {
                                "saga_id": saga.id if index % 2 else "",
                                "kind": "payment",
                                "id": saga.payment_id,
                                "status": "AUTHORIZED",
                                "order_id": saga.order_id,
                            }
                        )
                    realistic_history(saga, history)
                    uow.sagas.add(saga)
                    out.writelines(json.dumps(row) + "\n" for row in rows)
                uow.commit()
    container.shutdown_resources()
    return planted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sagas", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE)
    parser.add_argument("--history", type=int, default=12, help="history entries per saga")
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead of embedded PostgreSQL")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="saga-audit-bench-") as scratch:
        folder = Path(scratch)
        if args.sqlite:
            return run(f"sqlite:///{folder / 'saga.db'}", folder, args.sagas, args.page_size, args.history)
        with embedded_postgres(folder, prefix="saga-audit-postgres-") as pg:
            pg.psql("CREATE DATABASE audit;")
            return run(pg.get_uri("audit"), folder, args.sagas, args.page_size, args.history)


def run(database_url: str, folder: Path, count: int, page_size: int, history: int) -> int:
    upgrade(database_url)
    ledger = folder / "ledger.jsonl"
    started = time.perf_counter()
    planted = populate(database_url, ledger, count, history)
    print(f"wrote {count} sagas and their ledger in {time.perf_counter() - started:.1f}s", flush=True)
    container = build_container(Settings(database_url=database_url, transport="memory"))
    started = time.perf_counter()
    report = audit(stored_sagas(container.unit_of_work, page_size), read_ledger(str(ledger)))
    elapsed = time.perf_counter() - started
    container.shutdown_resources()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(report.summary())
    print(
        f"audit of {report.sagas} sagas and {report.ledger_rows} ledger rows: {elapsed:.1f}s "
        f"({report.sagas / elapsed:,.0f} sagas/s), page size {page_size}, peak RSS {peak_mib:.0f} MiB"
    )
    found = len(report.disagreements)
    if report.sagas != count or found != planted:
        print(f"expected {count} sagas and {planted} disagreements, found {report.sagas} and {found}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
