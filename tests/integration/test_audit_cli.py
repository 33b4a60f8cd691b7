"""`saga audit` as an operator runs it: a database, a ledger file, an exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from saga.domain.policy import SagaPolicy
from saga.domain.saga import CreateOrderSaga, SagaStatus
from saga.entrypoints.config import Settings
from saga.entrypoints.container import build_container

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
HEADER = "saga_id,kind,id,status,order_id\n"


def saga_cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "saga.entrypoints.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def database(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A migrated SQLite database with a COMPLETED, a FAILED and a STARTED saga; their ids by status."""
    url = f"sqlite:///{tmp_path / 'saga.db'}"
    assert saga_cli("db", "upgrade", database_url=url).returncode == 0
    container = build_container(Settings(database_url=url, transport="memory"))
    ids: dict[str, str] = {}
    for offset, status in enumerate((SagaStatus.COMPLETED, SagaStatus.FAILED, SagaStatus.STARTED)):
        saga, _ = CreateOrderSaga.start(
            str(uuid.uuid4()), "cust_1", {}, 100, "USD", T0 + timedelta(seconds=offset), SagaPolicy()
        )
        saga.status, saga.order_id = status, f"order-{status.value.lower()}"
        saga.payment_id = "pay-completed" if status is SagaStatus.COMPLETED else None
        with container.unit_of_work() as uow:
            uow.sagas.add(saga)
            uow.commit()
        ids[status.value] = saga.id
    container.shutdown_resources()
    return url, ids


def test_a_consistent_ledger_exits_zero_with_a_summary(database: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, ids = database
    ledger = tmp_path / "export.csv"
    ledger.write_text(
        HEADER
        + f"{ids['COMPLETED']},order,order-completed,CREATED,order-completed\n"
        + ",payment,pay-completed,AUTHORIZED,order-completed\n"
        + f"{ids['FAILED']},order,order-failed,CANCELLED,order-failed\n"
        + f"{ids['STARTED']},order,order-started,PENDING,order-started\n"
    )
    result = saga_cli("audit", str(ledger), database_url=url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("audited 3 sagas against 4 ledger rows")
    assert "0 disagreement(s), 1 in flight, 0 acknowledged" in result.stdout
    verbose = saga_cli("audit", "--verbose", str(ledger), database_url=url)
    assert f"in_flight\t{ids['STARTED']}" in verbose.stdout


def test_a_disagreement_is_listed_and_exits_one(database: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, ids = database
    ledger = tmp_path / "ledger.jsonl"
    rows = [
        {"saga_id": ids["COMPLETED"], "kind": "order", "id": "order-completed", "status": "CREATED", "order_id": ""},
        {"saga_id": ids["COMPLETED"], "kind": "payment", "id": "pay-completed", "status": "AUTHORIZED", "order_id": ""},
        {"saga_id": ids["FAILED"], "kind": "order", "id": "order-failed", "status": "PENDING", "order_id": ""},
    ]
    ledger.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = saga_cli("audit", str(ledger), database_url=url)
    assert result.returncode == 1
    assert f"live_after_failure\t{ids['FAILED']}\tFAILED but 1 resource(s) still live [order:order-failed:PENDING]" in (
        result.stdout
    )
    report = json.loads(saga_cli("audit", "--json", str(ledger), database_url=url).stdout)
    assert report["consistent"] is False and report["sagas"] == 3
    assert sorted(finding["kind"] for finding in report["findings"]) == ["in_flight", "live_after_failure"]


def test_an_unreadable_ledger_exits_two_saying_why(database: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, _ = database
    bad = tmp_path / "bad.csv"
    bad.write_text("saga,kind\n")
    result = saga_cli("audit", str(bad), database_url=url)
    assert result.returncode == 2 and "header must name" in result.stderr
    missing = saga_cli("audit", str(tmp_path / "none.jsonl"), database_url=url)
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_a_database_that_does_not_answer_exits_two_saying_so(tmp_path: Path) -> None:
    from tests.support.servers import free_port

    ledger = tmp_path / "export.csv"
    ledger.write_text(HEADER + "s1,order,o1,CREATED,o1\n")
    result = saga_cli("audit", str(ledger), database_url=f"postgresql://saga@127.0.0.1:{free_port()}/none")
    assert result.returncode == 2 and "database unavailable" in result.stderr
