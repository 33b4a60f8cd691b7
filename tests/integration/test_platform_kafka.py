"""The platform's deployment end to end: order, user and payment over Kafka, the timer over its
HTTP API, real PostgreSQL and a real Kafka-protocol broker, `saga simulate --profile platform`
standing in for the platform's services. The same outbox, deadlines and compensations as any step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from tests.support.kafka import KafkaTestSetup, new_setup
from tests.support.scenarios import FINAL, SEED_ORDER, history, start_order
from tests.support.servers import free_port, saga_background, saga_process, wait_for_status

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

SIMULATOR_READY = "simulator ready"


@dataclass
class PlatformSystem:
    setup: KafkaTestSetup
    database_url: str
    folder: Path
    timer_port: int

    @property
    def timer_url(self) -> str:
        return f"http://127.0.0.1:{self.timer_port}"

    def env(self, **extra: str) -> dict[str, str]:
        return self.setup.env(
            self.database_url,
            SAGA_TRANSPORT_TIMER="timer-api",
            SCHEDULER_SERVICE_URL=self.timer_url,
            SAGA_STEP_DEADLINE_SECONDS="2",
            SAGA_STEP_RESENDS="1",
            SAGA_COMPENSATION_ATTEMPTS="2",
            SAGA_COMPENSATION_BACKOFF_SECONDS="0.2",
            SAGA_HTTP_READ_TIMEOUT_SECONDS="1",
            **extra,
        )

    @contextmanager
    def orchestrator(self) -> Iterator[str]:
        with saga_process(["serve"], self.env(), self.folder / "serve.log") as base:
            yield base

    @contextmanager
    def simulator(self, *knobs: str) -> Iterator[Path]:
        log = self.folder / "simulator.log"
        ledger = self.folder / "ledger.jsonl"
        args = [
            *self.setup.simulator_args("--profile", "platform", "--port", str(self.timer_port)),
            "--ledger",
            str(ledger),
            *knobs,
        ]
        with saga_background(args, self.env(), log, SIMULATOR_READY):
            yield ledger

    def audit(self, ledger: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "saga.entrypoints.cli", "audit", "--json", ledger],
            env={**os.environ, **self.env()},
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture
def platform(kafka_bootstrap: str, fresh_database_url: str, tmp_path: Path) -> PlatformSystem:
    return PlatformSystem(new_setup(kafka_bootstrap), fresh_database_url, tmp_path, free_port())


def ledger_rows(system: PlatformSystem) -> list[dict[str, Any]]:
    response = requests.get(f"{system.timer_url}/ledger", timeout=5)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines()]


def test_the_seed_order_runs_over_kafka_and_the_timer_api_and_the_audit_agrees(platform: PlatformSystem) -> None:
    with platform.simulator() as ledger_file, platform.orchestrator() as base:
        saga = wait_for_status(base, start_order(base, SEED_ORDER), FINAL, timeout=30)
        rows = ledger_rows(platform)
        assert saga["status"] == "COMPLETED", saga
        assert history(saga, "command")[-1] == "start_order_timer"
        assert history(saga, "event")[-1] == "timer.started"
        assert sorted((row["kind"], row["id"], row["status"]) for row in rows) == [
            ("order", saga["order_id"], "CREATED"),
            ("payment", saga["payment_id"], "AUTHORIZED"),
        ]
        audited = platform.audit(f"{platform.timer_url}/ledger")
        assert audited.returncode == 0, audited.stdout + audited.stderr
        assert json.loads(audited.stdout)["consistent"] is True
    assert [json.loads(line) for line in ledger_file.read_text().splitlines()] == rows


def test_replies_come_unkeyed_without_message_id_and_with_the_services_timestamps(platform: PlatformSystem) -> None:
    with platform.simulator(), platform.orchestrator() as base:
        saga_id = start_order(base, SEED_ORDER)
        wait_for_status(base, saga_id, FINAL, timeout=30)
    records = platform.setup.read_all(platform.setup.topic("order_events"), expected=2)
    user = platform.setup.read_all(platform.setup.topic("user_events"), expected=1)
    assert records and user
    for record in [*records, *user]:
        body = json.loads(record.value)
        assert record.key is None and "message_id" not in body and body["correlation_id"] == saga_id
        assert body["source"] in ("order-service", "user-service")
    assert all("+" not in json.loads(record.value)["timestamp"] for record in records)
    assert all(json.loads(record.value)["timestamp"].endswith("+00:00") for record in user)


def test_an_order_the_order_service_cannot_hold_fails_by_deadline_and_leaves_nothing(
    platform: PlatformSystem,
) -> None:
    order = {
        "customer_id": "cust_123",
        "order_details": {"foodItems": [{"name": "Feast", "price": 999, "quantity": 2}], "deliveryLocation": "North"},
    }
    with platform.simulator(), platform.orchestrator() as base:
        saga = wait_for_status(base, start_order(base, order), FINAL, timeout=60)
        assert history(saga, "command")[:2] == ["create_order", "create_order"]
        assert ledger_rows(platform) == []
        audited = platform.audit(f"{platform.timer_url}/ledger")
        assert audited.returncode == 0, audited.stdout + audited.stderr


@pytest.mark.parametrize(
    ("knob", "failure"),
    [("--fail", "timer API answered 400"), ("--silent", "no reply")],
    ids=["timer refuses", "timer never answers"],
)
def test_a_timer_api_failure_undoes_the_payment_and_the_order_over_kafka(
    platform: PlatformSystem, knob: str, failure: str
) -> None:
    with platform.simulator(knob, "timer"), platform.orchestrator() as base:
        saga = wait_for_status(base, start_order(base, SEED_ORDER), FINAL, timeout=60)
        assert saga["status"] == "FAILED", saga
        assert "START_TIMER" in str(saga["error"]) and failure in str(saga["error"])
        assert history(saga, "command")[-2:] == ["revert_payment", "cancel_order"]
        assert sorted((row["kind"], row["status"]) for row in ledger_rows(platform)) == [
            ("order", "CANCELLED"),
            ("payment", "REVERTED"),
        ]
        audited = platform.audit(f"{platform.timer_url}/ledger")
        assert audited.returncode == 0, audited.stdout + audited.stderr
