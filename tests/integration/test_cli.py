"""The command line as an operator uses it: migrations, `serve` applying them at start, one-line
refusals of bad settings and arguments, and a clean stop on SIGTERM, also through `make run`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, inspect
from tests.support.metrics import scrape
from tests.support.servers import free_port, saga_process, spawn_saga, wait_until_answers

from saga.adapters.simulated_participants import SIMULATABLE_ACTIONS
from saga.adapters.sql import database_url
from saga.adapters.sql.migrations import head_revision

ROOT = Path(__file__).resolve().parents[2]


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


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"DATABASE_URL": "mysql://root:secret@db/saga"}, "DATABASE_URL"),
        ({"DATABASE_URL": "notaurl"}, "DATABASE_URL"),
        ({"DATABASE_URL": "sqlite:////nonexistent/dir/x.db"}, "DATABASE_URL"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "garbage"}, "KAFKA_BOOTSTRAP_SERVERS"),
        ({"SAGA_STEP_DEADLINE_SECONDS": "1e12"}, "SAGA_STEP_DEADLINE_SECONDS"),
        ({"SAGA_ORDER_TIMER_MINUTES": "5e9"}, "SAGA_ORDER_TIMER_MINUTES"),
        ({"SAGA_COMPENSATION_ATTEMPTS": "1e6"}, "SAGA_COMPENSATION_ATTEMPTS"),
    ],
)
def test_a_bad_setting_stops_the_start_with_one_line_naming_the_variable(
    environ: dict[str, str], variable: str
) -> None:
    result = saga_cli("serve", env={**environ, "PATH": ""})

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"saga: configuration error: {variable} "), result.stderr
    assert "secret" not in result.stderr  # a password in the URL is not echoed


def test_a_database_that_refuses_the_connection_is_one_line_naming_the_variable() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/saga"  # nothing listens there
    for command in (["db", "upgrade"], ["db", "current"]):
        result = saga_cli(*command, env={"DATABASE_URL": url, "PATH": ""})
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("saga: DATABASE_URL: database unavailable: "), result.stderr


@pytest.mark.parametrize("port", ["99999", "0", "-1", "http", "８０"])
def test_a_port_out_of_range_is_one_line(port: str) -> None:
    result = saga_cli("serve", "--port", port, env={"DATABASE_URL": "memory://", "PATH": ""})

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"saga serve: argument --port: must be an integer from 1 to 65535, got {port!r} (see saga serve --help)"
    ]


def test_the_simulators_help_lists_the_step_names() -> None:
    result = saga_cli("simulate", "--help", env={"PATH": ""})

    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    for option in ("--fail-step", "--reject-step", "--silent-step"):
        described = help_text.split(option + " STEP", 1)[1]
        assert all(name in described for name in SIMULATABLE_ACTIONS), option


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_serve_cleanly_with_exit_code_zero(tmp_path: Path, signum: signal.Signals) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    process = spawn_saga(["serve", "--port", str(port)], {"DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"}, log)
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/healthz", process, log)
        process.send_signal(signum)
        assert process.wait(20) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    assert "Traceback" not in log.read_text()


def test_sigterm_to_make_run_ends_it_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PORT": str(port), "DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}", "MAKEFLAGS": ""}
    make = subprocess.Popen(
        ["make", "run"], cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120  # the first `make run` installs the package
        while True:
            assert make.poll() is None and time.monotonic() < deadline, "make run did not start serving"
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        stopped_at = time.monotonic()
        os.killpg(make.pid, signal.SIGTERM)  # as a terminal, timeout(1) or a supervisor does: the whole group
        output = make.communicate(timeout=30)[0].decode(errors="replace")
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
    assert time.monotonic() - stopped_at < 10
    assert "Error" not in output and "Traceback" not in output, output
    assert "Finished server process" in output  # the server shut down, it was not killed


def test_make_run_installs_the_service_without_the_development_tools() -> None:
    dry_run = subprocess.run(
        ["make", "--dry-run", "--always-make", "run"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    installs = [line for line in dry_run.splitlines() if "pip install" in line and "--upgrade pip" not in line]

    assert installs == [".venv/bin/pip install --quiet -e ."]
    assert "exec .venv/bin/saga serve" in dry_run


def test_sigterm_stops_serve_with_kafka_at_once(kafka_bootstrap: str, tmp_path: Path) -> None:
    from tests.support.kafka import new_setup

    port = free_port()
    log = tmp_path / "serve.log"
    env = new_setup(kafka_bootstrap).env(f"sqlite:///{tmp_path / 's.db'}")
    process = spawn_saga(["serve", "--port", str(port)], env, log)
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/healthz", process, log)
        deadline = time.monotonic() + 60
        while requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code != 200:  # in the group
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    # The consumers left the group and the producer closed without waiting out a timeout.
    stopped = re.search(r"background work, publisher and database engine stopped in ([0-9.]+)s", log.read_text())
    assert stopped is not None, log.read_text()
    assert float(stopped.group(1)) < 3.0
