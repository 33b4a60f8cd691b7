"""The HTTP API end to end: `saga serve` under uvicorn on loopback, simulated participants in memory."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
from tests.support.metrics import counters, scrape, value
from tests.support.scenarios import FAILURE_PATHS, FINAL, SEED_ORDER, assert_fails_with_compensations
from tests.support.servers import saga_process, wait_for_status


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("api")
    env = {"DATABASE_URL": f"sqlite:///{folder / 'saga.db'}", "SAGA_TRANSPORT": "memory", "SAGA_MAX_BODY_BYTES": "4096"}
    with saga_process(["serve"], env, folder / "server.log") as base:
        yield base


def post_order(base: str, body: Any, **kwargs: Any) -> requests.Response:
    return requests.post(f"{base}/api/orders", json=body, timeout=5, **kwargs)


def test_seed_example_completes_within_a_second(server: str) -> None:
    started = time.monotonic()
    response = post_order(server, SEED_ORDER)
    assert response.status_code == 202
    body = response.json()
    assert body["success"] is True and body["status"] == "STARTED"
    saga = wait_for_status(server, body["saga_id"], FINAL)
    elapsed = time.monotonic() - started
    assert saga["status"] == "COMPLETED"
    assert elapsed < 5, f"took {elapsed:.3f}s"
    assert saga["amount_cents"] == 1299
    assert saga["order_id"] and saga["payment_id"] and saga["completed_at"]
    sent = [entry["type"] for entry in saga["history"] if entry["kind"] == "command"]
    received = [entry["type"] for entry in saga["history"] if entry["kind"] == "event"]
    assert sent == ["create_order", "get_payment_info", "authorize_payment", "update_order_status", "start_order_timer"]
    assert received == [
        "order.created",
        "user.payment_info_retrieved",
        "payment.authorized",
        "order.status_updated",
        "timer.started",
    ]
    assert all(entry["at"] for entry in saga["history"])


def test_saga_json_has_every_contract_field(server: str) -> None:
    saga_id = post_order(server, SEED_ORDER).json()["saga_id"]
    saga = wait_for_status(server, saga_id, FINAL)
    for name in (
        "id",
        "customer_id",
        "status",
        "current_step",
        "error",
        "order_id",
        "payment_id",
        "amount_cents",
        "order_details",
        "created_at",
        "updated_at",
        "completed_at",
        "history",
    ):
        assert name in saga
    assert saga["order_details"] == SEED_ORDER["order_details"]


def saga_count(base: str) -> int:
    return len(requests.get(f"{base}/api/sagas?limit=1000", timeout=5).json())


BAD_ORDERS: list[tuple[str, dict[str, Any], int, str]] = [
    ("invalid JSON", {"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "JSON"),
    ("array body", {"json": [SEED_ORDER]}, 400, "JSON object"),
    ("string body", {"json": "order"}, 400, "JSON object"),
    ("no customer", {"json": {"order_details": SEED_ORDER["order_details"]}}, 400, "customer_id"),
    ("empty customer", {"json": {**SEED_ORDER, "customer_id": "  "}}, 400, "customer_id"),
    ("numeric customer", {"json": {**SEED_ORDER, "customer_id": 42}}, 400, "customer_id"),
    ("no details", {"json": {"customer_id": "c"}}, 400, "order_details"),
    ("details not object", {"json": {"customer_id": "c", "order_details": "burger"}}, 400, "order_details"),
    ("no items", {"json": {"customer_id": "c", "order_details": {}}}, 400, "foodItems"),
    ("empty items", {"json": {"customer_id": "c", "order_details": {"foodItems": []}}}, 400, "foodItems"),
    (
        "negative price",
        {"json": {"customer_id": "c", "order_details": {"foodItems": [{"price": -1, "quantity": 1}]}}},
        400,
        "negative",
    ),
    (
        "text price",
        {"json": {"customer_id": "c", "order_details": {"foodItems": [{"price": "abc", "quantity": 1}]}}},
        400,
        "number",
    ),
    (
        "float quantity",
        {"json": {"customer_id": "c", "order_details": {"foodItems": [{"price": 1, "quantity": 1.5}]}}},
        400,
        "integer",
    ),
    (
        "zero quantity",
        {"json": {"customer_id": "c", "order_details": {"foodItems": [{"price": 1, "quantity": 0}]}}},
        400,
        "quantity",
    ),
    (
        "huge quantity",
        {"json": {"customer_id": "c", "order_details": {"foodItems": [{"price": 1, "quantity": 10**9}]}}},
        400,
        "quantity",
    ),
    (
        "too many items",
        {"json": {"customer_id": "c", "order_details": {"foodItems": [{"price": 1, "quantity": 1}] * 101}}},
        400,
        "at most 100",
    ),
    ("body too large", {"json": {**SEED_ORDER, "padding": "x" * 5000}}, 413, "at most 4096 bytes"),
    (
        "not JSON content type",
        {"data": b"customer_id=c", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        415,
        "application/json",
    ),
    (
        "deeply nested",
        {"data": b"[" * 100_000 + b"]" * 100_000, "headers": {"Content-Type": "application/json"}},
        413,
        "at most",
    ),
    (
        "NaN in details",
        {
            "data": b'{"customer_id": "c", "order_details": {"foodItems": [{"price": 1, "quantity": 1}], "tip": NaN}}',
            "headers": {"Content-Type": "application/json"},
        },
        400,
        "NaN",
    ),
    (
        "Infinity price",
        {
            "data": b'{"customer_id": "c", "order_details": {"foodItems": [{"price": Infinity, "quantity": 1}]}}',
            "headers": {"Content-Type": "application/json"},
        },
        400,
        "Infinity",
    ),
    (
        "lone surrogate",
        {
            "data": b'{"customer_id": "\\ud800", "order_details": {"foodItems": [{"price": 1, "quantity": 1}]}}',
            "headers": {"Content-Type": "application/json"},
        },
        400,
        "surrogate",
    ),
    (
        "NUL character",
        {
            "data": b'{"customer_id": "c", "order_details": {"foodItems": [{"name": "a\\u0000b", "price": 1, "quantity": 1}]}}',
            "headers": {"Content-Type": "application/json"},
        },
        400,
        "NUL",
    ),
    (
        "not UTF-8",
        {"data": '{"customer_id": "c"}'.encode("utf-16"), "headers": {"Content-Type": "application/json"}},
        400,
        "UTF-8",
    ),
]


@pytest.mark.parametrize(("case", "request_kwargs", "status", "message"), BAD_ORDERS, ids=[c[0] for c in BAD_ORDERS])
def test_bad_orders_get_a_clear_error_and_write_nothing(
    server: str, case: str, request_kwargs: dict[str, Any], status: int, message: str
) -> None:
    before = saga_count(server)
    response = requests.post(f"{server}/api/orders", timeout=5, **request_kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert message in body["error"]
    assert saga_count(server) == before


def test_nested_json_within_the_size_limit_is_a_400(server: str) -> None:
    response = requests.post(
        f"{server}/api/orders", data=b"[" * 2000 + b"]" * 2000, headers={"Content-Type": "application/json"}, timeout=5
    )
    assert response.status_code == 400


def test_unknown_and_malformed_saga_ids(server: str) -> None:
    unknown = requests.get(f"{server}/api/sagas/6f1c1d2e-0000-4000-8000-000000000000", timeout=5)
    assert unknown.status_code == 404 and unknown.json()["success"] is False
    malformed = requests.get(f"{server}/api/sagas/not-a-uuid", timeout=5)
    assert malformed.status_code == 400 and "UUID" in malformed.json()["error"]


def test_unknown_route_and_method_are_json_errors(server: str) -> None:
    assert requests.get(f"{server}/nope", timeout=5).json()["success"] is False
    wrong_method = requests.delete(f"{server}/api/orders", timeout=5)
    assert wrong_method.status_code == 405 and wrong_method.json()["success"] is False


CURSOR_OF_BRACKETS = base64.urlsafe_b64encode(b"[" * 2000).decode()
CURSOR_TOO_EARLY = base64.urlsafe_b64encode(
    b'["0001-01-01T00:00:00+05:00", "6f1c1d2e-0000-4000-8000-000000000000"]'
).decode()
CURSOR_NOT_A_UUID = base64.urlsafe_b64encode(b'["2026-01-01T00:00:00+00:00", "x"]').decode()


@pytest.mark.parametrize(
    "query",
    [
        "status=DONE",
        "status=",
        "limit=0",
        "limit=1001",
        "limit=ten",
        "limit=%C2%B2",
        "limit=" + "9" * 5000,
        "cursor=%%%",
        f"cursor={CURSOR_OF_BRACKETS}",
        f"cursor={CURSOR_TOO_EARLY}",
        f"cursor={CURSOR_NOT_A_UUID}",
    ],
)
def test_bad_listing_queries(server: str, query: str) -> None:
    response = requests.get(f"{server}/api/sagas?{query}", timeout=5)
    if query == "status=":
        assert response.status_code == 200  # an empty filter means no filter
    else:
        assert response.status_code == 400, response.text
        assert response.json()["success"] is False


def test_listing_filters_by_status_newest_first_and_pages_with_link(server: str) -> None:
    ids = [post_order(server, SEED_ORDER).json()["saga_id"] for _ in range(5)]
    for saga_id in ids:
        wait_for_status(server, saga_id, FINAL)
    completed = requests.get(f"{server}/api/sagas?status=COMPLETED&limit=1000", timeout=5).json()
    assert {saga["status"] for saga in completed} == {"COMPLETED"}
    created = [saga["created_at"] for saga in completed]
    assert created == sorted(created, reverse=True)
    assert [s["id"] for s in completed[:5]] == list(reversed(ids))

    seen: list[str] = []
    url: str | None = f"{server}/api/sagas?status=COMPLETED&limit=2"
    while url:
        page = requests.get(url, timeout=5)
        assert page.status_code == 200 and len(page.json()) <= 2
        seen += [saga["id"] for saga in page.json()]
        next_link = page.links.get("next", {}).get("url")
        url = urljoin(server, next_link) if next_link else None
    assert seen == [saga["id"] for saga in completed]
    assert requests.get(f"{server}/api/sagas?status=failed", timeout=5).status_code == 200


def test_health_readiness_and_openapi(server: str) -> None:
    assert requests.get(f"{server}/healthz", timeout=5).json() == {"status": "ok"}
    assert requests.get(f"{server}/readyz", timeout=5).status_code == 200
    spec = requests.get(f"{server}/openapi.json", timeout=5).json()
    assert {"/api/orders", "/api/sagas", "/api/sagas/{saga_id}", "/api/events"} <= set(spec["paths"])


def test_events_endpoint_rejects_json_that_cannot_be_stored(server: str) -> None:
    saga_id = post_order(server, SEED_ORDER).json()["saga_id"]
    for payload in (b'{"order_id": "o", "x": NaN}', b'{"order_id": "o\\udc00"}', b'{"order_id": "o\\u0000"}'):
        body = (
            b'{"type": "order.created", "correlation_id": "%s", "timestamp": "2026-11-28T12:00:00", "payload": %s}'
            % (
                saga_id.encode(),
                payload,
            )
        )
        response = requests.post(
            f"{server}/api/events", data=body, headers={"Content-Type": "application/json"}, timeout=5
        )
        assert response.status_code == 400, response.text
    assert requests.get(f"{server}/api/sagas/{saga_id}", timeout=5).status_code == 200


def test_events_endpoint_rejects_bad_and_unknown(server: str) -> None:
    bad = requests.post(f"{server}/api/events", json={"type": "order.created"}, timeout=5)
    assert bad.status_code == 400 and "correlation_id" in bad.json()["error"]
    unknown = requests.post(
        f"{server}/api/events",
        json={
            "type": "timer.started",
            "correlation_id": "6f1c1d2e-0000-4000-8000-000000000000",
            "timestamp": "2026-11-28T12:00:00.000000",
            "payload": {},
        },
        timeout=5,
    )
    assert unknown.status_code == 404


def test_a_late_duplicate_event_changes_nothing(server: str) -> None:
    saga_id = post_order(server, SEED_ORDER).json()["saga_id"]
    done = wait_for_status(server, saga_id, FINAL)
    late = {
        "type": "order.created",
        "correlation_id": saga_id,
        "timestamp": "2026-11-28T12:00:00.000000",
        "payload": {"order_id": done["order_id"]},
    }
    response = requests.post(f"{server}/api/events", json=late, timeout=5)
    assert response.status_code == 202 and response.json()["outcome"] == "ignored"
    after = requests.get(f"{server}/api/sagas/{saga_id}", timeout=5).json()
    assert after["status"] == "COMPLETED" and after["order_id"] == done["order_id"]
    assert after["ignored_events"] == 1 and after["history"][-1]["kind"] == "ignored"


def test_a_second_order_after_completion_is_cleaned_up_and_the_saga_stays_completed(server: str) -> None:
    saga_id = post_order(server, SEED_ORDER).json()["saga_id"]
    done = wait_for_status(server, saga_id, FINAL)
    second = {
        "type": "order.created",
        "correlation_id": saga_id,
        "timestamp": "2026-11-28T12:00:00.000000",
        "source": "order-service",
        "payload": {"order_id": "someone-else", "status": "PENDING"},
    }
    response = requests.post(f"{server}/api/events", json=second, timeout=5)
    assert response.status_code == 202 and response.json()["outcome"] == "applied"
    deadline = time.monotonic() + 10
    while True:
        after = requests.get(f"{server}/api/sagas/{saga_id}", timeout=5).json()
        if (after["cleanups"] and after["cleanups"][0]["status"] == "confirmed") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert after["status"] == "COMPLETED" and after["order_id"] == done["order_id"]
    assert after["cleanups"] == [
        {"kind": "order", "command": "cancel_order", "id": "someone-else", "status": "confirmed", "detail": None}
    ]


@pytest.mark.parametrize(("step", "compensations"), FAILURE_PATHS)
def test_simulated_failure_at_each_step_compensates(tmp_path: Path, step: str, compensations: list[str]) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'saga.db'}", "SAGA_SIMULATE_FAIL_STEP": step}
    with saga_process(["serve"], env, tmp_path / "server.log") as base:
        assert_fails_with_compensations(base, step, compensations)


def test_metrics_count_what_a_saga_cost(server: str) -> None:
    before = counters(server)
    wait_for_status(server, post_order(server, SEED_ORDER).json()["saga_id"], FINAL)
    after = counters(server)
    grew = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    assert grew["sagas_started"] == 1 and grew["events_applied"] == 5 and grew["commands_sent"] == 5
    assert grew["db_commits"] >= 6  # the start and one per event, at the least
    families = scrape(server)
    assert value(families["saga_sagas"], "saga_sagas", status="COMPLETED") >= 1
    assert {s.labels["status"] for s in families["saga_sagas"].samples} >= {"STARTED", "FAILED"}
    assert value(families["saga_outbox_pending_commands"], "saga_outbox_pending_commands") == 0
