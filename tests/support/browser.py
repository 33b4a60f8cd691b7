"""A real headless Chromium driven by selenium, and an orchestrator served in this process for it.

Debian's `chromium` and `chromium-driver` are installed with apt-get when missing (the
README says so); selenium is pointed at them, so nothing is downloaded at run time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from starlette.applications import Starlette
from tests.support.debian import ensure_installed
from tests.support.servers import free_port

from saga.adapters.simulated_participants import ACTION_COMMAND, SimulatedParticipants
from saga.domain.messages import JsonObject
from saga.entrypoints.container import Container, running
from saga.entrypoints.http_api import create_app

# Without the background-networking flags Chromium keeps trying to reach the internet, which
# this machine refuses; the user-data directory is new for every browser.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1100",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    chromium = ensure_installed("chromium", "chromium", "chromium-driver")
    chromedriver = ensure_installed("chromedriver", "chromium", "chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


@contextmanager
def served(container: Container) -> Iterator[str]:
    """Runs the container's resources (the worker among them) and serves its app with uvicorn
    on a free port in a thread; yields the base URL."""
    with running(container):
        yield from _serve(create_app(container))


def _serve(app: Starlette) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the orchestrator did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


class ScriptedParticipants:
    """Simulated participants that behave by customer: `script[customer_id]` names the actions
    (steps or compensations, e.g. "UPDATE_ORDER_STATUS") that fail and those that never answer."""

    def __init__(self, script: dict[str, dict[str, set[str]]]) -> None:
        self.script = {
            customer: {kind: set(actions) for kind, actions in plan.items()} for customer, plan in script.items()
        }
        """Read at every command: a test may change it while sagas run."""
        self._customers: dict[str, str] = {}
        self._answer = SimulatedParticipants()
        self._refuse = {action: SimulatedParticipants(fail_step=action) for action in ACTION_COMMAND}
        self._lock = threading.Lock()

    def handle(self, command: JsonObject) -> JsonObject | None:
        saga_id = str(command.get("correlation_id"))
        payload: dict[str, Any] = command.get("payload") or {}
        with self._lock:
            if "customer_id" in payload:
                self._customers.setdefault(saga_id, str(payload["customer_id"]))
            customer = self._customers.get(saga_id, "")
        plan = self.script.get(customer, {})
        action = next((a for a, c in ACTION_COMMAND.items() if c == command.get("type")), "")
        if action in plan.get("silent", set()):
            return None
        if action in plan.get("fail", set()):
            return self._refuse[action].handle(command)
        return self._answer.handle(command)
