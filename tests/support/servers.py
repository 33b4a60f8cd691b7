"""Real orchestrator processes on loopback for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_answers(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not answer {url} within {timeout}s:\n{log.read_text()}")


@contextmanager
def saga_process(
    args: list[str], env: Mapping[str, str], log: Path, probe_path: str = "/healthz", port: int | None = None
) -> Iterator[str]:
    """Runs `saga <args> --port N`, yields its base URL, and stops it with SIGINT."""
    port = port or free_port()
    full_env = {**os.environ, **env}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "saga.entrypoints.cli", *args, "--port", str(port)],
            env=full_env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(base + probe_path, process, log)
        yield base
    finally:
        stop_process(process)


def wait_for_status(base: str, saga_id: str, statuses: set[str], timeout: float = 15.0) -> dict[str, Any]:
    """Polls the saga until its status is one of `statuses`; returns the saga JSON."""
    deadline = time.monotonic() + timeout
    saga: dict[str, Any] = {}
    while time.monotonic() < deadline:
        saga = requests.get(f"{base}/api/sagas/{saga_id}", timeout=5).json()
        if saga.get("status") in statuses:
            return saga
        time.sleep(0.02)
    raise AssertionError(f"saga {saga_id} did not reach {statuses} in {timeout}s: {saga}")


def spawn_saga(args: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Starts `saga <args>` as given (no port added), its output going to `log`."""
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "saga.entrypoints.cli", *args],
            env={**os.environ, **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stops a process as an operator would (SIGINT), killing it if it does not exit in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_log(log: Path, text: str, process: subprocess.Popen[bytes] | None = None, timeout: float = 30.0) -> None:
    """Waits until `text` appears in a process's log (failing early if `process` exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before logging {text!r}:\n{log.read_text()}")
        time.sleep(0.05)
    raise RuntimeError(f"{text!r} did not appear in {log} within {timeout}s:\n{log.read_text()}")


@contextmanager
def saga_background(
    args: list[str], env: Mapping[str, str], log: Path, ready_text: str, timeout: float = 30.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Runs `saga <args>` without an HTTP port (a worker, a Kafka simulator) once its log shows `ready_text`."""
    process = spawn_saga(args, env, log)
    try:
        wait_for_log(log, ready_text, process, timeout)
        yield process
    finally:
        stop_process(process)
