"""The operator pages at /ui/ in a real headless Chromium (Debian's, driven by selenium), against
an orchestrator with SQLite whose simulated participants behave by customer, so that sagas of
every status exist at once.

Set SAGA_TEST_SCREENSHOTS to a folder to keep the screenshots (the README's come from here).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from dependency_injector import providers
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from tests.support.browser import ScriptedParticipants, browser, served
from tests.support.scenarios import SEED_ORDER

from saga.adapters.memory_transport import InMemoryTransport
from saga.adapters.sql.migrations import upgrade
from saga.domain.messages import Participant
from saga.domain.policy import SagaPolicy
from saga.domain.saga import CreateOrderSaga, SagaStatus
from saga.entrypoints.config import HttpSettings, Settings
from saga.entrypoints.container import Container

__all__ = ["browser"]

SCRIPT = {
    "happy-customer": {},
    "declined-customer": {"fail": {"UPDATE_ORDER_STATUS"}},
    "undo-refused-customer": {"fail": {"UPDATE_ORDER_STATUS", "CANCEL_ORDER"}},
    "waiting-customer": {"silent": {"GET_PAYMENT_INFO"}},
    "cancel-me-customer": {"silent": {"GET_PAYMENT_INFO"}},
    "stuck-undo-customer": {"fail": {"AUTHORIZE_PAYMENT"}, "silent": {"CANCEL_ORDER"}},
}
EXPECTED = {
    "happy-customer": SagaStatus.COMPLETED,
    "declined-customer": SagaStatus.FAILED,
    "undo-refused-customer": SagaStatus.COMPENSATION_FAILED,
    "waiting-customer": SagaStatus.STARTED,
    "cancel-me-customer": SagaStatus.STARTED,
    "stuck-undo-customer": SagaStatus.COMPENSATING,
}
DURATION = re.compile(r"^\d[\d,]*(\.\d+)? (ms|s|min)$")


ADMIN_TOKEN = "operator-s3cret"


@dataclass
class Operated:
    base: str
    container: Container
    sagas: dict[str, str]
    """Saga id by customer id."""
    participants: ScriptedParticipants

    def saga(self, customer: str) -> CreateOrderSaga:
        saga = self.container.orchestrator().get(self.sagas[customer])
        assert saga is not None
        return saga


def wait_until(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout}s")


@pytest.fixture
def operated(tmp_path: Path) -> Iterator[Operated]:
    with operating(tmp_path, admin_token=None) as running:
        yield running


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Operated]:
    with operating(tmp_path, admin_token=ADMIN_TOKEN) as running:
        yield running


@contextmanager
def operating(tmp_path: Path, admin_token: str | None) -> Iterator[Operated]:
    """An orchestrator with one saga of each status (EXPECTED), served on a free port."""
    url = f"sqlite:///{tmp_path / 'saga.db'}"
    upgrade(url)
    policy = SagaPolicy(
        step_deadline=timedelta(minutes=10),
        compensation_attempts=2,
        compensation_backoff=timedelta(milliseconds=50),
    )
    settings = Settings(
        database_url=url,
        transport="memory",
        policy=policy,
        sweep_interval_seconds=0.05,
        relay_poll_seconds=0.05,
        http=HttpSettings(admin_token=admin_token),
    )
    container = Container(settings=settings)
    participants = ScriptedParticipants(SCRIPT)
    transport = InMemoryTransport({participant: participants.handle for participant in Participant})
    container.memory_transport.override(providers.Object(transport))
    with served(container) as base:
        orchestrator = container.orchestrator()
        sagas = {customer: orchestrator.start(customer, SEED_ORDER["order_details"]).id for customer in EXPECTED}
        operated = Operated(base, container, sagas, participants)
        for customer, status in EXPECTED.items():

            def reached(c: str = customer, s: SagaStatus = status) -> bool:
                return operated.saga(c).status is s

            wait_until(reached, what=f"{customer} {status}")
        yield operated


def screenshot(driver: WebDriver, tmp_path: Path, name: str) -> Path:
    """Saves a full-page screenshot; copies it to SAGA_TEST_SCREENSHOTS when that is set."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, max(900, min(int(height) + 40, 4000)))
    path = tmp_path / name
    assert driver.save_screenshot(str(path))
    keep = os.environ.get("SAGA_TEST_SCREENSHOTS")
    if keep:
        shutil.copy(path, Path(keep) / name)
    return path


def rows_by_status(driver: WebDriver) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "#sagas tbody tr"):
        found.setdefault(row.get_attribute("data-status") or "", []).append(row.get_attribute("data-saga-id") or "")
    return found


def test_the_list_shows_sagas_of_every_status_filters_and_finds_them(
    operated: Operated, browser: WebDriver, tmp_path: Path
) -> None:
    browser.get(f"{operated.base}/ui/")
    listed = rows_by_status(browser)
    assert set(listed) == {s.value for s in EXPECTED.values()}
    assert sorted(s for ids in listed.values() for s in ids) == sorted(operated.sagas.values())
    screenshot(browser, tmp_path, "ui-sagas.png")

    browser.find_element(By.LINK_TEXT, "COMPENSATION_FAILED").click()
    assert rows_by_status(browser) == {"COMPENSATION_FAILED": [operated.sagas["undo-refused-customer"]]}

    box = browser.find_element(By.ID, "q")
    box.send_keys("declined-customer")
    box.submit()
    assert rows_by_status(browser) == {"FAILED": [operated.sagas["declined-customer"]]}
    order_id = operated.saga("happy-customer").order_id
    assert order_id
    browser.get(f"{operated.base}/ui/?q={order_id}")
    assert rows_by_status(browser) == {"COMPLETED": [operated.sagas["happy-customer"]]}
    browser.get(f"{operated.base}/ui/?q=nobody-at-all")
    assert "No saga has the id, customer id or order id" in browser.find_element(By.TAG_NAME, "main").text


def test_a_failed_sagas_page_shows_its_compensations_in_order_with_durations(
    operated: Operated, browser: WebDriver, tmp_path: Path
) -> None:
    saga_id = operated.sagas["declined-customer"]
    browser.get(f"{operated.base}/ui/")
    browser.find_element(By.CSS_SELECTOR, f'tr[data-saga-id="{saga_id}"] a').click()

    assert browser.find_element(By.ID, "status").text == "FAILED"
    assert "UPDATE_ORDER_STATUS failed" in browser.find_element(By.ID, "error").text
    compensations = browser.find_elements(By.CSS_SELECTOR, "#compensations li")
    assert [c.get_attribute("data-compensation") for c in compensations] == ["REVERT_PAYMENT", "CANCEL_ORDER"]
    assert [c.get_attribute("data-outcome") for c in compensations] == ["confirmed", "confirmed"]
    for item in compensations:
        assert DURATION.match(item.find_element(By.CLASS_NAME, "took").text), item.text
    steps = {
        s.get_attribute("data-step"): s.get_attribute("data-state")
        for s in browser.find_elements(By.CSS_SELECTOR, "#steps li")
    }
    assert steps == {
        "CREATE_ORDER": "done",
        "GET_PAYMENT_INFO": "done",
        "AUTHORIZE_PAYMENT": "done",
        "UPDATE_ORDER_STATUS": "failed",
        "START_TIMER": "not reached",
    }
    rows = browser.find_elements(By.CSS_SELECTOR, "#timeline tbody tr.exchange")
    assert [r.get_attribute("data-name") for r in rows] == [
        "CREATE_ORDER",
        "GET_PAYMENT_INFO",
        "AUTHORIZE_PAYMENT",
        "UPDATE_ORDER_STATUS",
        "REVERT_PAYMENT",
        "CANCEL_ORDER",
    ]
    for row in rows:
        assert DURATION.match(row.find_element(By.CLASS_NAME, "took").text), row.text
    statuses = [r.get_attribute("data-status") for r in browser.find_elements(By.CSS_SELECTOR, "tr.status-change")]
    assert statuses == ["COMPENSATING", "FAILED"]
    assert '"deliveryLocation"' in (browser.find_element(By.ID, "order-details").get_attribute("textContent") or "")
    screenshot(browser, tmp_path, "ui-saga-failed.png")

    browser.get(f"{operated.base}/ui/sagas/{operated.sagas['undo-refused-customer']}")
    cancel_order = browser.find_elements(By.CSS_SELECTOR, '#compensations li[data-compensation="CANCEL_ORDER"]')
    assert [c.get_attribute("data-outcome") for c in cancel_order] == ["failed", "failed"]  # two attempts
    screenshot(browser, tmp_path, "ui-saga-compensation-failed.png")


def test_cancel_from_the_page_and_the_page_follows_the_saga_live(operated: Operated, browser: WebDriver) -> None:
    saga_id = operated.sagas["cancel-me-customer"]
    browser.get(f"{operated.base}/ui/sagas/{saga_id}")
    wait_until(lambda: text_of(browser, "status") == "STARTED", 5, "STARTED on the page")
    assert browser.find_element(By.ID, "retry").get_attribute("disabled") is not None

    browser.find_element(By.ID, "cancel").click()
    wait_until(lambda: accept_alert(browser), 5, "the confirmation dialog")
    # No reload: the page's script fetches the saga while it runs.
    wait_until(lambda: text_of(browser, "status") == "CANCELLED", what="CANCELLED on the page")
    assert "accepted" in browser.find_element(By.ID, "action-result").text
    assert operated.saga("cancel-me-customer").status is SagaStatus.CANCELLED
    assert browser.find_element(By.ID, "cancel").get_attribute("disabled") is not None


def text_of(driver: WebDriver, element_id: str) -> str:
    """The element's text; "" while the page's script is replacing it."""
    try:
        return str(driver.find_element(By.ID, element_id).text)
    except StaleElementReferenceException:
        return ""


def accept_alert(driver: WebDriver) -> bool:
    try:
        driver.switch_to.alert.accept()
    except NoAlertPresentException:
        return False
    return True


def test_an_unknown_saga_has_a_page_saying_so(operated: Operated, browser: WebDriver) -> None:
    browser.get(f"{operated.base}/ui/sagas/00000000-0000-0000-0000-000000000001")
    assert "There is no saga 00000000-0000-0000-0000-000000000001" in browser.find_element(By.TAG_NAME, "main").text
    browser.get(f"{operated.base}/ui/sagas/not-a-uuid")
    assert "A saga id is a UUID" in browser.find_element(By.TAG_NAME, "main").text


def test_retry_from_the_page_runs_a_compensation_failed_sagas_compensations_again(
    operated: Operated, browser: WebDriver, tmp_path: Path
) -> None:
    saga_id = operated.sagas["undo-refused-customer"]
    browser.get(f"{operated.base}/ui/sagas/{saga_id}")
    assert text_of(browser, "status") == "COMPENSATION_FAILED"
    assert browser.find_element(By.ID, "cancel").get_attribute("disabled") is not None
    operated.participants.script["undo-refused-customer"]["fail"].discard("CANCEL_ORDER")  # the order service is fixed

    browser.find_element(By.ID, "operator").send_keys("dana")
    browser.find_element(By.ID, "retry").click()
    wait_until(lambda: text_of(browser, "status") == "FAILED", what="FAILED on the page after the retry")
    assert "accepted" in text_of(browser, "action-result")
    notes = [n.get_attribute("textContent") or "" for n in browser.find_elements(By.CSS_SELECTOR, "#timeline tr.note")]
    assert any("operator: retry" in note and "asked by dana" in note for note in notes), notes
    outcomes = [
        c.get_attribute("data-outcome")
        for c in browser.find_elements(By.CSS_SELECTOR, '#compensations li[data-compensation="CANCEL_ORDER"]')
    ]
    assert outcomes == ["failed", "failed", "confirmed"]
    assert operated.saga("undo-refused-customer").status is SagaStatus.FAILED
    screenshot(browser, tmp_path, "ui-saga-retried.png")


def test_with_an_admin_token_an_action_without_it_is_refused(guarded: Operated, browser: WebDriver) -> None:
    saga_id = guarded.sagas["cancel-me-customer"]
    browser.get(f"{guarded.base}/ui/sagas/{saga_id}")
    assert not browser.find_element(By.ID, "token").is_displayed()

    browser.find_element(By.ID, "cancel").click()
    wait_until(lambda: accept_alert(browser), 5, "the confirmation dialog")
    wait_until(lambda: text_of(browser, "action-result").startswith("Refused"), 5, "the refusal")
    assert "bearer token" in text_of(browser, "action-result")
    assert browser.find_element(By.ID, "token").is_displayed()  # the page asks for the token
    assert guarded.saga("cancel-me-customer").status is SagaStatus.STARTED  # nothing changed

    browser.find_element(By.ID, "token").send_keys("not-the-token")
    browser.find_element(By.ID, "cancel").click()
    wait_until(lambda: accept_alert(browser), 5, "the confirmation dialog")
    wait_until(lambda: text_of(browser, "action-result").startswith("Refused"), 5, "the refusal of a wrong token")
    assert guarded.saga("cancel-me-customer").status is SagaStatus.STARTED

    token = browser.find_element(By.ID, "token")
    token.clear()
    token.send_keys(ADMIN_TOKEN)
    browser.find_element(By.ID, "cancel").click()
    wait_until(lambda: accept_alert(browser), 5, "the confirmation dialog")
    wait_until(lambda: text_of(browser, "status") == "CANCELLED", what="CANCELLED with the token")
    assert guarded.saga("cancel-me-customer").status is SagaStatus.CANCELLED
