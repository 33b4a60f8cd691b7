"""The platform's deployment for end-to-end tests over a real broker and PostgreSQL.

One rig is one set of topics, one database and one timer port: orchestrator processes
(`saga serve`, `saga worker`) and `saga simulate --profile platform` run against it.
A test module can keep one rig and one orchestrator, and start a simulator per set of
knobs one after the other (same consumer group, same timer port): each simulator
keeps its own ledger file, and `audit()` runs `saga audit` over all of them together,
as the ledger of every order and payment the sagas in the database could have made.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tests.support.kafka import KafkaTestSetup
from tests.support.scenarios import FINAL
from tests.support.servers import saga_background, saga_process

from saga.adapters.sql import database_url as sqlalchemy_url

SIMULATOR_READY = "simulator ready"
SUCCESS_EVENTS = (
    "order.created",
    "user.payment_info_retrieved",
    "payment.authorized",
    "order.status_updated",
    "timer.started",
)
"""One per step: the event that moves a saga past it."""
COMPENSATIONS = ("revert_payment", "cancel_order")


@contextmanager
def new_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server of `server_url`, dropped on exit; yields its URL."""
    name = f"saga_{uuid.uuid4().hex}"
    admin = create_engine(sqlalchemy_url(server_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@dataclass
class AuditRun:
    """`saga audit --json` as run: its exit status and report."""

    returncode: int
    report: dict[str, Any]
    output: str

    def findings(self, kind: str) -> list[dict[str, Any]]:
        return [finding for finding in self.report.get("findings", []) if finding["kind"] == kind]

    @property
    def disagreements(self) -> list[dict[str, Any]]:
        return [
            finding
            for finding in self.report.get("findings", [])
            if finding["kind"] in ("completed_mismatch", "live_after_failure", "unknown_resource")
        ]

    @property
    def settled_and_consistent(self) -> bool:
        return self.returncode == 0 and not self.disagreements and not self.findings("in_flight")


@dataclass
class PlatformRig:
    """One deployment's topics, database, timer port and scratch folder, and how long steps may take."""

    setup: KafkaTestSetup
    database_url: str
    folder: Path
    timer_port: int
    timings: Mapping[str, str] = field(default_factory=dict)
    ledgers: list[Path] = field(default_factory=list)
    """Every simulator's ledger file, oldest first."""

    @property
    def timer_url(self) -> str:
        return f"http://127.0.0.1:{self.timer_port}"

    def env(self, **extra: str) -> dict[str, str]:
        """Orchestrator and simulator settings: order, user and payment over Kafka, the timer over its API."""
        return self.setup.env(
            self.database_url,
            SAGA_TRANSPORT_TIMER="timer-api",
            SCHEDULER_SERVICE_URL=self.timer_url,
            **{**self.timings, **extra},
        )

    @contextmanager
    def serve(self, log_name: str = "serve.log") -> Iterator[str]:
        """`saga serve`; yields its base URL."""
        with saga_process(["serve"], self.env(), self.folder / log_name) as base:
            yield base

    @contextmanager
    def worker(self, log_name: str = "worker.log") -> Iterator[Path]:
        """`saga worker` in the orchestrator's consumer group, once it has partitions; yields its log."""
        log = self.folder / log_name
        with saga_background(["worker"], self.env(), log, "assigned"):
            yield log

    @contextmanager
    def simulator(self, *knobs: str) -> Iterator[Path]:
        """`saga simulate --profile platform` with `knobs`, serving the timer API on the rig's port;
        yields its ledger file (also kept in `ledgers`). Stop it only once its sagas settled:
        replies it still holds back go with it."""
        number = len(self.ledgers) + 1
        ledger = self.folder / f"ledger-{number}.jsonl"
        self.ledgers.append(ledger)
        args = [
            *self.setup.simulator_args("--profile", "platform", "--port", str(self.timer_port)),
            "--ledger",
            str(ledger),
            *knobs,
        ]
        with saga_background(args, self.env(), self.folder / f"simulator-{number}.log", SIMULATOR_READY):
            yield ledger

    def held_replies(self) -> int:
        """Replies the running simulator holds back (its slow knob)."""
        body: dict[str, Any] = requests.get(f"{self.timer_url}/healthz", timeout=5).json()
        return int(body["held_replies"])

    def command_reasons(self, saga_id: str, expected: int, timeout: float = 20.0) -> list[str]:
        """The `reason` of each compensation command sent for `saga_id`, read back from the command
        topics (at least `expected` of them, or what came within `timeout` seconds)."""
        reasons: list[str] = []
        consumer = KafkaConsumer(bootstrap_servers=self.setup.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50)
        try:
            assignment = [
                TopicPartition(self.setup.topic(topic), partition)
                for topic in ("order_commands", "payment_commands")
                for partition in sorted(consumer.partitions_for_topic(self.setup.topic(topic)) or ())
            ]
            consumer.assign(assignment)
            consumer.seek_to_beginning(*assignment)
            deadline = time.monotonic() + timeout
            while len(reasons) < expected and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=200).values():
                    for record in batch:
                        command = json.loads(record.value)
                        if command["correlation_id"] == saga_id and command["type"] in COMPENSATIONS:
                            reasons.append(command["payload"]["reason"])
            return reasons
        finally:
            consumer.close()

    def ledger_rows(self) -> list[dict[str, Any]]:
        """Every row of every simulator's ledger file."""
        return [
            json.loads(line)
            for path in self.ledgers
            if path.exists()
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]

    def audit(self) -> AuditRun:
        """`saga audit --json` over the database and every simulator's ledger, as an operator runs it."""
        combined = self.folder / "ledger-all.jsonl"
        combined.write_text("".join(json.dumps(row) + "\n" for row in self.ledger_rows()), encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "saga.entrypoints.cli", "audit", "--json", str(combined)],
            env={**os.environ, **self.env()},
            capture_output=True,
            text=True,
            timeout=120,
        )
        try:
            report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
        except ValueError:
            report = {}
        return AuditRun(done.returncode, report, done.stdout + done.stderr)

    def settle(self, timeout: float = 60.0) -> AuditRun:
        """Waits until the simulator holds nothing back and the audit finds every saga settled
        (terminal, no compensation or clean-up pending) and no disagreement; returns that audit,
        or the last one when `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        while self.held_replies() and time.monotonic() < deadline:
            time.sleep(0.1)
        run = self.audit()
        while not run.settled_and_consistent and time.monotonic() < deadline:
            time.sleep(0.3)
            run = self.audit()
        return run


def saga_json(base: str, saga_id: str) -> dict[str, Any]:
    response = requests.get(f"{base}/api/sagas/{saga_id}", timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def all_sagas(base: str, page_size: int = 1000) -> list[dict[str, Any]]:
    """Every saga, through the list API's pages."""
    url: str | None = f"{base}/api/sagas?limit={page_size}"
    sagas: list[dict[str, Any]] = []
    while url:
        response = requests.get(url, timeout=30)
        assert response.status_code == 200, response.text
        sagas += response.json()
        url = response.links.get("next", {}).get("url")
    return sagas


def is_settled(saga: Mapping[str, Any]) -> bool:
    """Terminal, with no compensation or clean-up still to run or confirm."""
    undos = [*saga.get("compensations", []), *saga.get("cleanups", [])]
    return saga["status"] in FINAL and saga.get("awaiting") is None and all(u["status"] != "pending" for u in undos)


def applied_successes(saga: Mapping[str, Any]) -> dict[str, int]:
    """How many times each step's success event moved the saga (an event naming a resource
    the saga does not hold is undone, not applied)."""
    counts = dict.fromkeys(SUCCESS_EVENTS, 0)
    for entry in saga["history"]:
        if entry["kind"] == "event" and entry["type"] in counts and "not held" not in (entry["detail"] or ""):
            counts[entry["type"]] += 1
    return counts


def unconfirmed(saga: Mapping[str, Any]) -> list[tuple[str, str, str | None]]:
    """(kind, command, id) of each compensation or clean-up the saga names as left undone."""
    return [
        (undo["kind"], undo["command"], undo["id"])
        for undo in [*saga.get("compensations", []), *saga.get("cleanups", [])]
        if undo["status"] == "unconfirmed"
    ]
