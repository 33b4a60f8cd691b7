"""Hostile and unusual input at the HTTP edge of a real `saga serve`: each kind of input is
refused with a clear 4xx (or taken, when valid) and leaves nothing half-written.

Numbers (non-finite, lenient strings, beyond two decimal places), ids of the wrong type,
the client's Host header, Unicode case folding, control characters bound for the log,
a body that arrives too slowly, and the intake limits a deployment sets.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from tests.support.scenarios import FINAL, SEED_ORDER
from tests.support.servers import saga_process, wait_for_status

JSON = {"Content-Type": "application/json"}
BODY_TIMEOUT_SECONDS = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("hostile")
    env = {
        "DATABASE_URL": f"sqlite:///{folder / 'saga.db'}",
        "SAGA_TRANSPORT": "memory",
        "SAGA_BODY_READ_TIMEOUT_SECONDS": str(BODY_TIMEOUT_SECONDS),
    }
    with saga_process(["serve"], env, folder / "server.log") as base:
        yield base, folder / "server.log"


@pytest.fixture
def base(server: tuple[str, Path]) -> str:
    return server[0]


def saga_count(base: str) -> int:
    return len(requests.get(f"{base}/api/sagas?limit=1000", timeout=5).json())


def post_raw(base: str, path: str, body: bytes | str) -> requests.Response:
    data = body.encode() if isinstance(body, str) else body
    return requests.post(f"{base}{path}", data=data, headers=JSON, timeout=5)


def order_text(price: str = "12.99", extra: str = "", customer: str = '"cust_1"') -> str:
    return (
        f'{{"customer_id": {customer}, "order_details": {{"foodItems": [{{"name": "Burger", "price": {price}, '
        f'"quantity": 1}}], "deliveryLocation": "North Campus"{extra}}}}}'
    )


def event_text(saga_id: str, event_type: str, payload: str) -> str:
    return (
        f'{{"type": "{event_type}", "correlation_id": "{saga_id}", '
        f'"timestamp": "2026-11-28T12:00:00+00:00", "payload": {payload}}}'
    )


def start(base: str) -> str:
    response = requests.post(f"{base}/api/orders", json=SEED_ORDER, timeout=5)
    assert response.status_code == 202, response.text
    saga_id: str = response.json()["saga_id"]
    return saga_id


# ------------------------------------------------------- non-finite numbers

NON_FINITE = ["1e309", "-1e309", "NaN", "Infinity", "-Infinity", "1" + "0" * 309]


@pytest.mark.parametrize("literal", NON_FINITE)
def test_a_non_finite_number_anywhere_in_an_order_is_a_400_and_writes_nothing(base: str, literal: str) -> None:
    before = saga_count(base)
    for body in (order_text(extra=f', "note": {literal}'), order_text(price=literal)):
        response = post_raw(base, "/api/orders", body)
        assert response.status_code == 400, response.text
        assert response.json()["success"] is False
    assert saga_count(base) == before
    # Every page that would have held it still reads.
    assert requests.get(f"{base}/api/sagas?limit=1000", timeout=5).status_code == 200


@pytest.mark.parametrize("literal", NON_FINITE)
def test_a_non_finite_number_in_an_event_is_a_400(base: str, literal: str) -> None:
    saga_id = start(base)
    wait_for_status(base, saga_id, FINAL)
    body = event_text(saga_id, "user.payment_info_retrieved", f'{{"payment_info": {{"card": {literal}}}}}')

    response = post_raw(base, "/api/events", body)

    assert response.status_code == 400, response.text
    assert requests.get(f"{base}/api/sagas/{saga_id}", timeout=5).status_code == 200


# ------------------------------------------------------- lenient numbers

LENIENT = ["_1_2.9_9_", "١٢.٩٩", "１２", " 12.99\n", "12.99\u00a0", "1_0_0_0_0_0", "-5", "1e2"]
INEXACT = ["0.0049999999999999999", "99999.9999999999999", "0.005", "12.999"]


@pytest.mark.parametrize("price", [json.dumps(text) for text in LENIENT] + INEXACT)
def test_prices_are_exact_plain_decimals_with_two_places_at_most(base: str, price: str) -> None:
    before = saga_count(base)

    response = post_raw(base, "/api/orders", order_text(price=price))

    assert response.status_code == 400, response.text
    assert "price" in response.json()["error"]
    assert saga_count(base) == before


@pytest.mark.parametrize(("price", "cents"), [('"12.99"', 1299), ("12.990", 1299), ("1E1", 1000)])
def test_exact_prices_are_taken(base: str, price: str, cents: int) -> None:
    response = post_raw(base, "/api/orders", order_text(price=price))

    assert response.status_code == 202, response.text
    saga = wait_for_status(base, response.json()["saga_id"], FINAL)
    assert saga["amount_cents"] == cents


# ------------------------------------------------------- ids in replies


@pytest.mark.parametrize(
    ("event_type", "field"),
    [
        ("order.created", "order_id"),
        ("payment.authorized", "payment_id"),
        ("order.cancelled", "order_id"),
        ("payment.released", "payment_id"),
        ("order.status_updated", "order_id"),
    ],
)
@pytest.mark.parametrize("value", ['{"a": [1, 2]}', "false", "true", "1.5", "[]", '""'])
def test_an_id_that_is_not_a_string_or_an_integer_is_a_400(base: str, event_type: str, field: str, value: str) -> None:
    saga_id = start(base)
    saga = wait_for_status(base, saga_id, FINAL)

    response = post_raw(base, "/api/events", event_text(saga_id, event_type, f'{{"{field}": {value}}}'))

    assert response.status_code == 400, response.text
    assert field in response.json()["error"]
    assert requests.get(f"{base}/api/sagas/{saga_id}", timeout=5).json()["version"] == saga["version"]


# ------------------------------------------------------- text


def test_a_literal_backslash_u0000_is_text_not_a_nul(base: str) -> None:
    literal = r"\u0000"  # six characters
    body = order_text(extra=', "note": "a\\\\u0000b"')
    assert '"a\\\\u0000b"' in body and json.loads(body)["order_details"]["note"] == f"a{literal}b"

    response = post_raw(base, "/api/orders", body)

    assert response.status_code == 202, response.text
    saga = wait_for_status(base, response.json()["saga_id"], FINAL)
    assert saga["order_details"]["note"] == f"a{literal}b"
    assert post_raw(base, "/api/orders", order_text(extra=', "note": "a\\u0000b"')).status_code == 400


def test_control_characters_from_a_client_never_start_a_log_line(server: tuple[str, Path]) -> None:
    base, log = server
    marker = f"FORGED-{uuid.uuid4().hex}"

    response = requests.post(
        f"{base}/api/orders", json={**SEED_ORDER, "customer_id": f"c\r\nERROR {marker}\u2028x"}, timeout=5
    )

    assert response.status_code == 202
    wait_for_status(base, response.json()["saga_id"], FINAL)
    lines = [line for line in log.read_text(errors="replace").splitlines() if marker in line]
    assert lines and all(not line.startswith("ERROR") and "\\r\\nERROR" in line for line in lines), lines


# ------------------------------------------------------- headers and URLs


def test_links_and_redirects_never_echo_the_clients_host(base: str) -> None:
    for _ in range(3):
        start(base)
    evil = {"Host": "evil.example"}

    page = requests.get(f"{base}/api/sagas?limit=1", headers=evil, timeout=5)
    redirect = requests.get(f"{base}/api/sagas/?limit=1", headers=evil, timeout=5, allow_redirects=False)

    assert page.status_code == 200
    assert page.headers["Link"].startswith("</api/sagas?") and "evil" not in page.headers["Link"]
    assert redirect.status_code in (307, 308)
    assert redirect.headers["Location"] == "/api/sagas?limit=1"


def test_a_405_says_which_methods_are_allowed(base: str) -> None:
    response = requests.delete(f"{base}/api/orders", timeout=5)

    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.json()["success"] is False


@pytest.mark.parametrize("status", ["ſtarted", "faıled", "COMPLETED\u0130", "ＳＴＡＲＴＥＤ"])
def test_a_status_filter_is_compared_exactly_not_by_unicode_case_folding(base: str, status: str) -> None:
    response = requests.get(f"{base}/api/sagas", params={"status": status}, timeout=5)

    assert response.status_code == 400, response.text


def test_responses_are_not_cached_or_sniffed(base: str) -> None:
    saga_id = start(base)
    for response in (
        requests.get(f"{base}/api/sagas/{saga_id}", timeout=5),
        requests.get(f"{base}/api/sagas", timeout=5),
        requests.post(f"{base}/api/orders", json={}, timeout=5),
        requests.get(f"{base}/nope", timeout=5),
    ):
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


# ------------------------------------------------------- a slow body


def test_a_body_slower_than_the_timeout_gets_a_408_and_its_connection_closed(base: str) -> None:
    host, port = base.removeprefix("http://").split(":")
    before = saga_count(base)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /api/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{"
        )
        started = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer:
            sock.sendall(b" ")  # one byte at a time, well under the timeout apart
            time.sleep(0.2)
            answer += _recv_ready(sock)
            assert time.monotonic() - started < 10, "no answer to a slow body"
        elapsed = time.monotonic() - started
        while chunk := _recv_until_closed(sock):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert elapsed >= BODY_TIMEOUT_SECONDS * 0.9
    assert b"not received within" in answer
    assert saga_count(base) == before


def _recv_ready(sock: socket.socket) -> bytes:
    sock.setblocking(False)
    try:
        return sock.recv(65536)
    except BlockingIOError:
        return b""
    finally:
        sock.setblocking(True)


def _recv_until_closed(sock: socket.socket) -> bytes:
    # The server ends the connection after its 408; a kept-open one fails here by timeout.
    sock.settimeout(5)
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


# ------------------------------------------------------- intake limits


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("platform-limits")
    env = {
        "DATABASE_URL": f"sqlite:///{folder / 'saga.db'}",
        "SAGA_TRANSPORT": "memory",
        "SAGA_MAX_ORDER_TOTAL": "999.99",
        "SAGA_MAX_DELIVERY_FEE": "999.99",
        "SAGA_MAX_CUSTOMER_ID_LENGTH": "36",
        "SAGA_REQUIRED_ORDER_FIELDS": "deliveryLocation",
    }
    with saga_process(["serve"], env, folder / "server.log") as url:
        yield url


def order(customer_id: str = "c" * 36, **details: Any) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "order_details": {"foodItems": [{"price": "999.99", "quantity": 1}], "deliveryLocation": "North", **details},
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (order(deliveryFee="0.01"), "total must be at most 999.99"),
        (order(foodItems=[{"price": 1, "quantity": 1}], deliveryFee=1000), "deliveryFee must be at most 999.99"),
        (order(customer_id="c" * 37), "customer_id must be at most 36 characters"),
        (order(deliveryLocation=None), "order_details.deliveryLocation is required"),
    ],
)
def test_a_deployment_refuses_up_front_what_its_participants_would_drop(
    platform: str, body: dict[str, Any], message: str
) -> None:
    response = requests.post(f"{platform}/api/orders", json=body, timeout=5)

    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_a_deployment_takes_its_largest_order(platform: str) -> None:
    response = requests.post(f"{platform}/api/orders", json=order(), timeout=5)

    assert response.status_code == 202, response.text
    assert wait_for_status(platform, response.json()["saga_id"], FINAL)["amount_cents"] == 99999


# ------------------------------------------------------- stored in PostgreSQL


@pytest.mark.postgres
def test_postgresql_stores_and_gives_back_what_was_taken_and_nothing_it_cannot_hold(
    fresh_database_url: str, tmp_path: Path
) -> None:
    literal = r"\u0000"  # six characters, which PostgreSQL's JSON holds; a NUL it would not
    env = {"DATABASE_URL": fresh_database_url, "SAGA_TRANSPORT": "memory"}
    with saga_process(["serve"], env, tmp_path / "server.log") as base:
        taken = post_raw(base, "/api/orders", order_text(price='"12.99"', extra=', "note": "a\\\\u0000b", "n": 1E2'))
        refused = [
            post_raw(base, "/api/orders", order_text(extra=', "note": "a\\u0000b"')),
            post_raw(base, "/api/orders", order_text(extra=', "note": 1e309')),
        ]

        assert taken.status_code == 202, taken.text
        saga = wait_for_status(base, taken.json()["saga_id"], FINAL)
        assert saga["order_details"]["note"] == f"a{literal}b" and saga["order_details"]["n"] == 100
        assert saga["status"] == "COMPLETED" and saga["amount_cents"] == 1299
        assert [response.status_code for response in refused] == [400, 400]
        assert saga_count(base) == 1


@pytest.mark.postgres
def test_postgresql_takes_an_event_with_unstorable_text_only_where_the_saga_ignores_it(
    fresh_database_url: str, tmp_path: Path
) -> None:
    closed = "http://127.0.0.1:9"  # participants that never answer: the saga waits for our events
    env = {
        "DATABASE_URL": fresh_database_url,
        "SAGA_TRANSPORT": "http",
        **{name: closed for name in ("ORDER_SERVICE_URL", "USER_SERVICE_URL", "PAYMENT_SERVICE_URL")},
        "SCHEDULER_SERVICE_URL": closed,
    }
    with saga_process(["serve"], env, tmp_path / "server.log") as base:
        saga_id = start(base)
        refused = [
            post_raw(base, "/api/events", event_text(saga_id, "order.created", f'{{"order_id": "o{text}"}}'))
            for text in ("\\u0000", "\\udc00")
        ]
        created = event_text(saga_id, "order.created", '{"order_id": "o1", "note": "a\\u0000b\\udc00"}')
        taken = post_raw(base, "/api/events", created.replace('{"type"', '{"source": "order\\u0000\\ud800", "type"'))
        failed = post_raw(
            base,
            "/api/events",
            event_text(saga_id, "user.payment_info_failed", '{"error": "E\\u0000", "message": "no\\udc00card"}'),
        )

        assert [response.status_code for response in refused] == [400, 400]
        assert all("payload.order_id must" in response.json()["error"] for response in refused), refused[1].text
        assert (taken.status_code, failed.status_code) == (202, 202), (taken.text, failed.text)
        saga = requests.get(f"{base}/api/sagas/{saga_id}", timeout=5).json()
        assert saga["order_id"] == "o1" and saga["status"] == "COMPENSATING"
        assert saga["error"] == "GET_PAYMENT_INFO failed: E: no\ufffdcard"


@pytest.mark.postgres
def test_a_search_for_text_no_database_stores_finds_nothing_on_postgresql(
    fresh_database_url: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": fresh_database_url, "SAGA_TRANSPORT": "memory"}
    with saga_process(["serve"], env, tmp_path / "server.log") as base:
        start(base)
        answers = [requests.get(f"{base}/ui/", params={"q": term}, timeout=5) for term in ("cust_1\x00", "\x00")]
        found = requests.get(f"{base}/ui/", params={"q": "cust_1"}, timeout=5)

    assert [answer.status_code for answer in answers] == [200, 200], answers[0].text[:300]
    assert all("cust_1</" not in answer.text for answer in answers)
    assert found.status_code == 200 and "cust_1" in found.text
