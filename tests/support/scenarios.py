"""Saga scenarios shared by every transport: the same checks over memory, Kafka and HTTP.

Each takes the base URL of a running orchestrator whose participants are set up
for the scenario (for instance a simulator started with a failing step).
"""

from __future__ import annotations

from typing import Any

import requests
from tests.support.servers import wait_for_status

SEED_ORDER: dict[str, Any] = {
    "customer_id": "cust_123",
    "order_details": {
        "foodItems": [{"name": "Burger", "price": 12.99, "quantity": 1}],
        "deliveryLocation": "North Campus",
    },
}
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "COMPENSATION_FAILED"}
STEP_COMMANDS = ["create_order", "get_payment_info", "authorize_payment", "update_order_status", "start_order_timer"]
SUCCESS_EVENTS = [
    "order.created",
    "user.payment_info_retrieved",
    "payment.authorized",
    "order.status_updated",
    "timer.started",
]

# Each step failing by its failure event, and the compensations the contract sends.
FAILURE_PATHS: list[tuple[str, list[str]]] = [
    ("CREATE_ORDER", []),
    ("GET_PAYMENT_INFO", ["cancel_order"]),
    ("AUTHORIZE_PAYMENT", ["cancel_order"]),
    ("UPDATE_ORDER_STATUS", ["revert_payment", "cancel_order"]),
    ("START_TIMER", ["revert_payment", "cancel_order"]),
]


def start_order(base: str, order: dict[str, Any] | None = None) -> str:
    response = requests.post(f"{base}/api/orders", json=order or SEED_ORDER, timeout=10)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["success"] is True and body["status"] == "STARTED"
    saga_id: str = body["saga_id"]
    return saga_id


def history(saga: dict[str, Any], kind: str) -> list[str]:
    return [entry["type"] for entry in saga["history"] if entry["kind"] == kind]


def assert_completes(base: str, timeout: float = 20.0) -> dict[str, Any]:
    """The seed order runs all five steps and ends COMPLETED."""
    saga = wait_for_status(base, start_order(base), FINAL, timeout)
    assert saga["status"] == "COMPLETED", saga
    assert saga["amount_cents"] == 1299
    assert saga["order_id"] and saga["payment_id"] and saga["completed_at"]
    assert history(saga, "command") == STEP_COMMANDS
    assert history(saga, "event") == SUCCESS_EVENTS
    return saga


def assert_fails_with_compensations(
    base: str, step: str, compensations: list[str], timeout: float = 20.0
) -> dict[str, Any]:
    """With `step` failing, the saga ends FAILED after exactly the contract's compensations."""
    saga = wait_for_status(base, start_order(base), FINAL, timeout)
    assert saga["status"] == "FAILED", saga
    assert saga["current_step"] == step and step in (saga["error"] or "")
    sent = history(saga, "command")
    failed_at = STEP_COMMANDS.index(step_command(step))
    assert sent == STEP_COMMANDS[: failed_at + 1] + compensations
    return saga


def assert_all_complete(base: str, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    """`count` sagas started together all end COMPLETED, each having applied five replies once."""
    ids = [start_order(base) for _ in range(count)]
    sagas = [wait_for_status(base, saga_id, FINAL, timeout) for saga_id in ids]
    assert [saga["status"] for saga in sagas] == ["COMPLETED"] * count, [s["error"] for s in sagas]
    for saga in sagas:
        assert history(saga, "event") == SUCCESS_EVENTS
    return sagas


def step_command(step: str) -> str:
    return dict(
        zip(
            ["CREATE_ORDER", "GET_PAYMENT_INFO", "AUTHORIZE_PAYMENT", "UPDATE_ORDER_STATUS", "START_TIMER"],
            STEP_COMMANDS,
            strict=False,
        )
    )[step]


# The reply that confirms each compensation, and each step's failure event.
COMPENSATION_REPLIES = {"cancel_order": "order.cancelled", "revert_payment": "payment.released"}
FAILURE_EVENTS = {
    "CREATE_ORDER": "order.creation_failed",
    "GET_PAYMENT_INFO": "user.payment_info_failed",
    "AUTHORIZE_PAYMENT": "payment.failed",
    "UPDATE_ORDER_STATUS": "order.status_update_failed",
    "START_TIMER": "timer.failed",
}


def events_of_failure(step: str, compensations: list[str]) -> list[str]:
    """The events a saga applies when `step` fails by its failure event and each compensation is confirmed."""
    failed_at = STEP_COMMANDS.index(step_command(step))
    return SUCCESS_EVENTS[:failed_at] + [FAILURE_EVENTS[step]] + [COMPENSATION_REPLIES[c] for c in compensations]


def assert_ends(base: str, status: str, step: str, commands: list[str], timeout: float = 20.0) -> dict[str, Any]:
    """The seed order ends in `status` at `step` after sending exactly `commands`, re-sends included, in order."""
    saga = wait_for_status(base, start_order(base), FINAL, timeout)
    assert saga["status"] == status, saga
    assert saga["current_step"] == step, saga
    assert history(saga, "command") == commands, saga["history"]
    return saga
