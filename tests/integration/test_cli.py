"""The command line as an operator uses it: migrations, and `serve` applying them at start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests
from sqlalchemy import create_engine, inspect
from tests.support.metrics import scrape
from tests.support.servers import saga_process

from saga.adapters.sql import database_url
from saga.adapters.sql.migrations import head_revision


def saga_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "saga.entrypoints.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_db_upgrade_creates_the_schema_on_postgres_and_says_its_revision(fresh_database_url: str) -> None:
    env = {"DATABASE_URL": fresh_database_url, "PATH": ""}
    before = saga_cli("db", "current", env=env)
    upgraded = saga_cli("db", "upgrade", env=env)
    again = saga_cli("db", "upgrade", env=env)

    assert before.returncode == 0 and before.stdout.strip() == "None"
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == again.stdout.strip() == head_revision()
    engine = create_engine(database_url(fresh_database_url))
    try:
        assert {"sagas", "outbox", "inbox", "alembic_version"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_serve_migrates_a_new_sqlite_file_at_start(tmp_path: Path) -> None:
    database = tmp_path / "new.db"
    with saga_process(["serve"], {"DATABASE_URL": f"sqlite:///{database}"}, tmp_path / "serve.log") as base:
        assert requests.get(f"{base}/readyz", timeout=5).status_code == 200
    assert (
        saga_cli("db", "current", env={"DATABASE_URL": f"sqlite:///{database}", "PATH": ""}).stdout.strip()
        == head_revision()
    )


def test_a_worker_with_a_port_answers_health_and_metrics_but_takes_no_orders(tmp_path: Path) -> None:
    closed = "http://127.0.0.1:9"  # nothing listens: the worker must start anyway
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'saga.db'}",
        "SAGA_TRANSPORT": "http",
        **{
            name: closed
            for name in ("ORDER_SERVICE_URL", "USER_SERVICE_URL", "PAYMENT_SERVICE_URL", "SCHEDULER_SERVICE_URL")
        },
    }
    with saga_process(["worker"], env, tmp_path / "worker.log") as base:
        assert requests.get(f"{base}/healthz", timeout=5).json() == {"status": "ok"}
        assert requests.get(f"{base}/readyz", timeout=5).status_code == 200
        families = scrape(base)
        assert families["saga_outbox_pending_commands"].samples[0].value == 0 and "saga_sagas" in families
        refused = requests.post(f"{base}/api/orders", json={"customer_id": "c"}, timeout=5)
        assert refused.status_code == 404 and refused.json()["success"] is False
