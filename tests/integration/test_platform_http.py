"""The platform profile over the HTTP transport: `saga simulate --transport http --profile platform`
serving `/commands`, the timer API and the ledger, and `saga serve` reaching it, as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests
from tests.support.scenarios import FINAL, SEED_ORDER, history, start_order
from tests.support.servers import free_port, saga_process, wait_for_status


def run(
    tmp_path: Path, *knobs: str, cleanups: int = 0
) -> tuple[dict[str, object], list[dict[str, str]], subprocess.CompletedProcess[str]]:
    orchestrator_port = free_port()
    simulator_port = free_port()
    simulator_url = f"http://127.0.0.1:{simulator_port}"
    database = f"sqlite:///{tmp_path / 'saga.db'}"
    env = {
        "DATABASE_URL": database,
        "SAGA_TRANSPORT": "http",
        "SAGA_TRANSPORT_TIMER": "timer-api",
        **{
            name: simulator_url
            for name in ("ORDER_SERVICE_URL", "USER_SERVICE_URL", "PAYMENT_SERVICE_URL", "SCHEDULER_SERVICE_URL")
        },
        "SAGA_STEP_DEADLINE_SECONDS": "2",
    }
    simulate = [
        "simulate",
        "--transport",
        "http",
        "--profile",
        "platform",
        "--orchestrator-url",
        f"http://127.0.0.1:{orchestrator_port}",
        *knobs,
    ]
    with (
        saga_process(simulate, env, tmp_path / "simulator.log", port=simulator_port),
        saga_process(["serve"], env, tmp_path / "serve.log", port=orchestrator_port) as base,
    ):
        saga = wait_for_status(base, start_order(base, SEED_ORDER), FINAL, timeout=60)
        settled_by = time.monotonic() + 30
        while time.monotonic() < settled_by:  # a clean-up may still be confirming
            saga = requests.get(f"{base}/api/sagas/{saga['id']}", timeout=5).json()
            done = saga.get("cleanups", [])
            # The extra reply is posted after the command was answered: wait for its clean-up too.
            if len(done) >= cleanups and all(cleanup["status"] != "pending" for cleanup in done):
                break
            time.sleep(0.05)
        ledger = [json.loads(line) for line in requests.get(f"{simulator_url}/ledger", timeout=5).text.splitlines()]
        audited = subprocess.run(
            [
                sys.executable,
                "-m",
                "saga.entrypoints.cli",
                "audit",
                f"{simulator_url}/ledger?format=csv",
                "--format",
                "csv",
            ],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
    return saga, ledger, audited


def test_the_seed_order_completes_over_http_with_the_timer_api(tmp_path: Path) -> None:
    saga, ledger, audited = run(tmp_path)
    assert saga["status"] == "COMPLETED", saga
    assert history(saga, "event")[-1] == "timer.started"
    assert sorted(row["status"] for row in ledger) == ["AUTHORIZED", "CREATED"]
    assert audited.returncode == 0, audited.stdout + audited.stderr


def test_a_second_order_made_for_one_command_is_cleaned_up(tmp_path: Path) -> None:
    saga, ledger, audited = run(tmp_path, "--twice", "create_order", cleanups=1)
    assert saga["status"] == "COMPLETED", saga
    orders = sorted(row["status"] for row in ledger if row["kind"] == "order")
    assert orders == ["CANCELLED", "CREATED"], ledger
    assert audited.returncode == 0, audited.stdout + audited.stderr
