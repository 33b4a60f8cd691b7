"""Operator actions over a real server (docs/contract.md, "HTTP API"): retry and cancel,
and the SAGA_ADMIN_TOKEN that guards them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from tests.support.scenarios import FINAL, SEED_ORDER
from tests.support.servers import saga_process, wait_for_status

TOKEN = "s3cret-operator-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Payment info is refused and so is every cancel_order: each saga ends COMPENSATION_FAILED."""
    folder = tmp_path_factory.mktemp("operator")
    env = {
        "DATABASE_URL": f"sqlite:///{folder / 'saga.db'}",
        "SAGA_TRANSPORT": "memory",
        "SAGA_SIMULATE_FAIL_STEP": "GET_PAYMENT_INFO,CANCEL_ORDER",
        "SAGA_COMPENSATION_ATTEMPTS": "2",
        "SAGA_COMPENSATION_BACKOFF_SECONDS": "0.05",
        "SAGA_SWEEP_INTERVAL_SECONDS": "0.05",
        "SAGA_ADMIN_TOKEN": TOKEN,
    }
    with saga_process(["serve"], env, folder / "server.log") as base:
        yield base


def compensation_failed(base: str) -> dict[str, Any]:
    saga_id = requests.post(f"{base}/api/orders", json=SEED_ORDER, timeout=5).json()["saga_id"]
    saga = wait_for_status(base, saga_id, FINAL)
    assert saga["status"] == "COMPENSATION_FAILED", saga
    return saga


def test_retry_runs_the_unconfirmed_compensation_again_and_records_who_asked(server: str) -> None:
    saga = compensation_failed(server)
    sent_before = [e for e in saga["history"] if e["kind"] == "command" and e["type"] == "cancel_order"]

    response = requests.post(
        f"{server}/api/sagas/{saga['id']}/retry", headers={**ADMIN, "X-Operator": "alice"}, timeout=5
    )

    assert response.status_code == 202, response.text
    assert response.json()["saga_id"] == saga["id"]
    after = wait_for_status(server, saga["id"], FINAL)
    # The participant still refuses: fresh attempts, then COMPENSATION_FAILED again.
    assert after["status"] == "COMPENSATION_FAILED"
    retries = [e for e in after["history"] if e["kind"] == "operator"]
    assert [(e["type"], e["detail"]) for e in retries] == [("retry", "asked by alice")]
    sent_after = [e for e in after["history"] if e["kind"] == "command" and e["type"] == "cancel_order"]
    assert len(sent_after) == len(sent_before) + 2
    statuses = [e["type"] for e in after["history"] if e["kind"] == "status"]
    assert statuses[-3:] == ["COMPENSATION_FAILED", "COMPENSATING", "COMPENSATION_FAILED"]
    assert after["compensations"][0]["id"] == saga["order_id"] and after["compensations"][0]["status"] == "unconfirmed"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}],
)
def test_retry_and_cancel_without_the_token_are_refused_and_change_nothing(
    server: str, headers: dict[str, str]
) -> None:
    saga = compensation_failed(server)

    for action in ("retry", "cancel"):
        response = requests.post(f"{server}/api/sagas/{saga['id']}/{action}", headers=headers, timeout=5)
        assert response.status_code == 401, response.text
        assert response.json() == {"success": False, "error": "a valid bearer token is required"}

    after = requests.get(f"{server}/api/sagas/{saga['id']}", timeout=5).json()
    assert after["version"] == saga["version"] and after["status"] == "COMPENSATION_FAILED"


@pytest.fixture(scope="module")
def healthy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("healthy")
    env = {"DATABASE_URL": f"sqlite:///{folder / 'saga.db'}", "SAGA_TRANSPORT": "memory", "SAGA_ADMIN_TOKEN": TOKEN}
    with saga_process(["serve"], env, folder / "server.log") as base:
        yield base


def test_nothing_to_retry_is_409_and_an_unknown_saga_404(healthy_server: str) -> None:
    saga_id = requests.post(f"{healthy_server}/api/orders", json=SEED_ORDER, timeout=5).json()["saga_id"]
    assert wait_for_status(healthy_server, saga_id, FINAL)["status"] == "COMPLETED"

    nothing = requests.post(f"{healthy_server}/api/sagas/{saga_id}/retry", headers=ADMIN, timeout=5)
    unknown = requests.post(
        f"{healthy_server}/api/sagas/00000000-0000-4000-8000-000000000000/retry", headers=ADMIN, timeout=5
    )
    late_cancel = requests.post(f"{healthy_server}/api/sagas/{saga_id}/cancel", headers=ADMIN, timeout=5)

    assert nothing.status_code == 409 and "no unconfirmed" in nothing.json()["error"]
    assert unknown.status_code == 404
    assert late_cancel.status_code == 409


def test_a_bad_operator_name_is_400(server: str) -> None:
    saga = compensation_failed(server)

    response = requests.post(
        f"{server}/api/sagas/{saga['id']}/retry", headers={**ADMIN, "X-Operator": "x" * 201}, timeout=5
    )

    assert response.status_code == 400


def test_a_clean_up_left_unconfirmed_is_listed_and_retried_without_changing_the_status(healthy_server: str) -> None:
    # The healthy server's order service cancels; a stray order named after completion is
    # cleaned up and confirmed, so the listing of unconfirmed clean-ups stays empty for it.
    saga_id = requests.post(f"{healthy_server}/api/orders", json=SEED_ORDER, timeout=5).json()["saga_id"]
    wait_for_status(healthy_server, saga_id, FINAL)
    stray = {
        "type": "order.created",
        "correlation_id": saga_id,
        "timestamp": "2026-11-28T12:00:00",
        "payload": {"order_id": "stray-order"},
    }
    assert requests.post(f"{healthy_server}/api/events", json=stray, timeout=5).status_code == 202

    listed = requests.get(f"{healthy_server}/api/sagas", params={"cleanup": "unconfirmed"}, timeout=5)
    bad = requests.get(f"{healthy_server}/api/sagas", params={"cleanup": "maybe"}, timeout=5)

    assert listed.status_code == 200 and saga_id not in [saga["id"] for saga in listed.json()]
    assert bad.status_code == 400


def test_unconfirmed_clean_ups_are_listed_and_an_operator_retries_them(server: str) -> None:
    # This server's order service refuses every cancel_order: the clean-up is given up.
    saga = compensation_failed(server)
    stray = {
        "type": "order.created",
        "correlation_id": saga["id"],
        "timestamp": "2026-11-28T12:00:00",
        "payload": {"order_id": "stray-order"},
    }
    assert requests.post(f"{server}/api/events", json=stray, timeout=5).status_code == 202
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        cleanups = requests.get(f"{server}/api/sagas/{saga['id']}", timeout=5).json()["cleanups"]
        if cleanups and cleanups[0]["status"] == "unconfirmed":
            break
        time.sleep(0.05)

    listed = requests.get(f"{server}/api/sagas", params={"cleanup": "unconfirmed", "limit": "1000"}, timeout=5).json()

    assert saga["id"] in [entry["id"] for entry in listed]
    assert all(any(c["status"] == "unconfirmed" for c in entry["cleanups"]) for entry in listed)
    retried = requests.post(f"{server}/api/sagas/{saga['id']}/retry", headers=ADMIN, timeout=5)
    assert retried.status_code == 202
    after = wait_for_status(server, saga["id"], FINAL)
    assert after["status"] == "COMPENSATION_FAILED"
    assert after["cleanups"][0]["id"] == "stray-order"
