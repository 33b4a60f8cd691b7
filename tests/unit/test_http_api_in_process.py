"""The HTTP API in-process (docs/contract.md, "HTTP API"): Starlette's TestClient over the
app, a manual clock, and the relay, the event consumer and the deadline sweep turned by
hand, so deadlines, re-sends and back-offs happen when the test moves the clock, not
when a real server's loops get round to them. The tests that need a real server (the
process, its signals and sockets) run over uvicorn in tests/integration."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest
from dependency_injector import providers
from starlette.testclient import TestClient

from saga.adapters.clock import ManualClock
from saga.adapters.envelope import decode_json, encode_json
from saga.adapters.simulated_participants import SimulatedParticipants
from saga.domain.policy import SagaPolicy
from saga.entrypoints.config import HttpSettings, Settings
from saga.entrypoints.consumers import MemoryEventConsumer
from saga.entrypoints.container import Container
from saga.entrypoints.http_api import create_app, create_order_bytes

TOKEN = "s3cret-operator-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
ORDER = {
    "customer_id": "cust_1",
    "order_details": {"foodItems": [{"name": "Burger", "price": 12.99, "quantity": 1}]},
}
POLICY = SagaPolicy(
    step_deadline=timedelta(seconds=30),
    step_resends=2,
    compensation_attempts=2,
    compensation_backoff=timedelta(seconds=5),
)
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "COMPENSATION_FAILED"}


@dataclass
class Api:
    """The app over an in-memory store and transport, with everything that runs in the
    background of a real process run by `settle` instead."""

    client: TestClient
    clock: ManualClock
    container: Container

    def settle(self) -> None:
        """Sends what was committed, applies the replies and acts on passed deadlines,
        until nothing is left to do at the clock's present time."""
        relay = self.container.relay()
        consumer = self.container.event_sources()[0]
        assert isinstance(consumer, MemoryEventConsumer)
        orchestrator = self.container.orchestrator()
        while relay.run_once() + consumer.drain() + orchestrator.sweep_deadlines():
            pass

    def wait(self, seconds: float) -> None:
        """Moves the clock on by `seconds`, then settles."""
        self.clock.advance(timedelta(seconds=seconds))
        self.settle()

    def order(self) -> str:
        response = self.client.post("/api/orders", json=ORDER)
        assert response.status_code == 202, response.text
        saga_id: str = response.json()["saga_id"]
        self.settle()
        return saga_id

    def saga(self, saga_id: str) -> dict[str, Any]:
        response = self.client.get(f"/api/sagas/{saga_id}")
        assert response.status_code == 200, response.text
        saga: dict[str, Any] = response.json()
        return saga

    def sent(self, saga_id: str, command: str) -> list[str]:
        """The message ids of the `command`s the participants received for the saga."""
        transport = self.container.memory_transport()
        return [
            str(envelope["message_id"])
            for envelope in transport.sent
            if envelope.get("correlation_id") == saga_id and envelope.get("type") == command
        ]


def in_process(fail_step: str | None = None, silent_step: str | None = None) -> Iterator[Api]:
    settings = Settings(
        database_url="memory://",
        transport="memory",
        policy=POLICY,
        http=HttpSettings(admin_token=TOKEN),
    )
    container = Container(settings=settings)
    clock = ManualClock()
    container.clock.override(providers.Object(clock))
    container.simulation.override(
        providers.Singleton(SimulatedParticipants, fail_step=fail_step, silent_step=silent_step)
    )
    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        yield Api(client, clock, container)
    container.shutdown_resources()


@pytest.fixture
def healthy() -> Iterator[Api]:
    yield from in_process()


@pytest.fixture
def silent_payments() -> Iterator[Api]:
    """The user service never answers get_payment_info."""
    yield from in_process(silent_step="GET_PAYMENT_INFO")


@pytest.fixture
def refused_cancels() -> Iterator[Api]:
    """Payment info is refused and so is every cancel_order: sagas end COMPENSATION_FAILED."""
    yield from in_process(fail_step="GET_PAYMENT_INFO,CANCEL_ORDER")


def history(saga: dict[str, Any], kind: str) -> list[str]:
    return [entry["type"] for entry in saga["history"] if entry["kind"] == kind]


# ------------------------------------------------------ deadlines and re-sends


def test_a_silent_participant_gets_the_same_command_at_each_deadline_then_the_saga_compensates(
    silent_payments: Api,
) -> None:
    api = silent_payments
    saga_id = api.order()
    assert api.saga(saga_id)["current_step"] == "GET_PAYMENT_INFO"
    assert len(api.sent(saga_id, "get_payment_info")) == 1

    api.wait(29)  # just before the step's deadline: nothing is re-sent
    assert len(api.sent(saga_id, "get_payment_info")) == 1

    for resends in range(1, POLICY.step_resends + 1):
        api.wait(1 if resends == 1 else 30)
        sent = api.sent(saga_id, "get_payment_info")
        assert len(sent) == 1 + resends
        assert len(set(sent)) == 1  # a re-send is the same command: one message_id
        assert api.saga(saga_id)["status"] == "STARTED"

    api.wait(30)  # the last re-send's deadline passes unanswered: the step failed

    saga = api.saga(saga_id)
    assert saga["status"] == "FAILED", saga
    assert saga["current_step"] == "GET_PAYMENT_INFO"
    assert history(saga, "command") == ["create_order"] + ["get_payment_info"] * 3 + ["cancel_order"]
    assert api.sent(saga_id, "cancel_order") != []


def test_a_rejected_compensation_is_sent_again_after_its_backoff_then_given_up(refused_cancels: Api) -> None:
    api = refused_cancels
    saga_id = api.order()
    assert api.saga(saga_id)["status"] == "COMPENSATING"
    assert len(api.sent(saga_id, "cancel_order")) == 1

    api.wait(4)  # within the back-off: no second attempt yet
    assert len(api.sent(saga_id, "cancel_order")) == 1
    api.wait(1)

    saga = api.saga(saga_id)
    assert len(api.sent(saga_id, "cancel_order")) == POLICY.compensation_attempts
    assert saga["status"] == "COMPENSATION_FAILED", saga
    assert saga["compensations"][0]["status"] == "unconfirmed"


# ------------------------------------------------------------------- listing


def test_the_listing_pages_newest_first_through_its_link_header(healthy: Api) -> None:
    api = healthy
    started = []
    for _ in range(5):
        started.append(api.order())
        api.wait(1)  # distinct creation times

    seen: list[str] = []
    url = "/api/sagas?limit=2"
    pages = 0
    while url:
        response = api.client.get(url)
        assert response.status_code == 200, response.text
        assert len(response.json()) <= 2
        seen += [saga["id"] for saga in response.json()]
        pages += 1
        link = response.headers.get("link")
        if link is None:
            break
        assert link.startswith("</api/sagas?") and link.endswith('>; rel="next"'), link
        url = link[1 : link.index(">")]
        assert parse_qs(urlsplit(url).query)["limit"] == ["2"]

    assert seen == list(reversed(started))
    assert pages == 3


def test_the_listing_filters_by_status(silent_payments: Api) -> None:
    api = silent_payments
    waiting = api.order()

    started = api.client.get("/api/sagas", params={"status": "started"})
    completed = api.client.get("/api/sagas", params={"status": "COMPLETED"})
    bad = api.client.get("/api/sagas", params={"status": "RUNNING"})

    assert [saga["id"] for saga in started.json()] == [waiting]
    assert completed.json() == []
    assert bad.status_code == 400


# -------------------------------------------------------------- cancel, retry


def test_cancel_undoes_a_saga_still_moving_forward_and_it_ends_cancelled(silent_payments: Api) -> None:
    api = silent_payments
    saga_id = api.order()

    refused = api.client.post(f"/api/sagas/{saga_id}/cancel", json={"reason": "changed my mind"})
    assert refused.status_code == 401
    assert api.saga(saga_id)["status"] == "STARTED"

    response = api.client.post(f"/api/sagas/{saga_id}/cancel", json={"reason": "changed my mind"}, headers=ADMIN)
    assert response.status_code == 202, response.text
    api.settle()

    saga = api.saga(saga_id)
    assert saga["status"] == "CANCELLED", saga
    assert history(saga, "command")[-1] == "cancel_order"


def test_a_second_cancel_is_a_409_while_the_first_undoes_the_saga_and_after(silent_payments: Api) -> None:
    api = silent_payments
    saga_id = api.order()
    assert api.client.post(f"/api/sagas/{saga_id}/cancel", headers=ADMIN).status_code == 202

    while_cancelling = api.client.post(f"/api/sagas/{saga_id}/cancel", headers=ADMIN)
    api.settle()
    after = api.client.post(f"/api/sagas/{saga_id}/cancel", headers=ADMIN)

    assert while_cancelling.status_code == 409, while_cancelling.text
    assert "COMPENSATING and already cancelled" in while_cancelling.json()["error"]
    assert after.status_code == 409 and "CANCELLED and already cancelled" in after.json()["error"]
    assert api.saga(saga_id)["status"] == "CANCELLED"


def test_a_header_given_twice_that_the_saga_would_keep_is_a_400_and_nothing_changes(healthy: Api) -> None:
    api = healthy
    saga_id = api.order()
    json_body = {"Content-Type": "application/json"}

    keys = api.client.post(
        "/api/orders",
        content=json.dumps(ORDER),
        headers=[("Idempotency-Key", "a1"), ("Idempotency-Key", "b2"), *json_body.items()],
    )
    operators = api.client.post(
        f"/api/sagas/{saga_id}/retry",
        headers=[*ADMIN.items(), ("X-Operator", "ann"), ("X-Operator", "bob")],
    )

    assert keys.status_code == 400 and "Idempotency-Key must be given once" in keys.json()["error"]
    assert operators.status_code == 400 and "X-Operator must be one header" in operators.json()["error"]
    assert len(api.client.get("/api/sagas").json()) == 1
    assert history(api.saga(saga_id), "operator") == []


def test_a_number_beyond_a_double_is_named_as_such_not_as_broken_json(healthy: Api) -> None:
    body = json.dumps(ORDER).replace("12.99", "1e309")

    response = api_post_json(healthy, "/api/orders", body)

    assert response.status_code == 400
    assert (
        response.json()["error"]
        == "body is JSON the orchestrator does not take: number 1e309 is outside the finite range"
    )


def api_post_json(api: Api, path: str, body: str) -> Any:
    return api.client.post(path, content=body, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}],
)
def test_retry_without_the_admin_token_is_refused_and_changes_nothing(
    refused_cancels: Api, headers: dict[str, str]
) -> None:
    api = refused_cancels
    saga_id = api.order()
    api.wait(5)
    before = api.saga(saga_id)
    assert before["status"] == "COMPENSATION_FAILED"

    response = api.client.post(f"/api/sagas/{saga_id}/retry", headers=headers)

    assert response.status_code == 401
    assert response.json() == {"success": False, "error": "a valid bearer token is required"}
    assert api.saga(saga_id)["version"] == before["version"]


def test_retry_with_the_admin_token_runs_the_unconfirmed_compensation_again(refused_cancels: Api) -> None:
    api = refused_cancels
    saga_id = api.order()
    api.wait(5)
    sent_before = len(api.sent(saga_id, "cancel_order"))

    response = api.client.post(f"/api/sagas/{saga_id}/retry", headers={**ADMIN, "X-Operator": "alice"})
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "COMPENSATING"
    api.settle()
    api.wait(5)

    saga = api.saga(saga_id)
    assert saga["status"] == "COMPENSATION_FAILED"
    assert len(api.sent(saga_id, "cancel_order")) == sent_before + POLICY.compensation_attempts
    operator = [(entry["type"], entry["detail"]) for entry in saga["history"] if entry["kind"] == "operator"]
    assert operator == [("retry", "asked by alice")]
    assert history(saga, "status")[-3:] == ["COMPENSATION_FAILED", "COMPENSATING", "COMPENSATION_FAILED"]


def test_nothing_to_retry_or_cancel_is_409_and_an_unknown_saga_404(healthy: Api) -> None:
    api = healthy
    saga_id = api.order()
    assert api.saga(saga_id)["status"] == "COMPLETED"

    nothing = api.client.post(f"/api/sagas/{saga_id}/retry", headers=ADMIN)
    late_cancel = api.client.post(f"/api/sagas/{saga_id}/cancel", headers=ADMIN)
    unknown = api.client.post("/api/sagas/00000000-0000-4000-8000-000000000000/retry", headers=ADMIN)

    assert nothing.status_code == 409 and "no unconfirmed" in nothing.json()["error"]
    assert late_cancel.status_code == 409
    assert unknown.status_code == 404


# ---------------------------------------------------------- cleanup=unconfirmed


def stray_order(saga_id: str) -> dict[str, Any]:
    """A second order.created for a saga that has moved on: its order is cleaned up."""
    return {
        "type": "order.created",
        "correlation_id": saga_id,
        "timestamp": "2026-11-28T12:00:00",
        "payload": {"order_id": "stray-order"},
    }


def test_a_clean_up_the_participant_confirms_is_not_listed_as_unconfirmed(healthy: Api) -> None:
    api = healthy
    saga_id = api.order()
    assert api.client.post("/api/events", json=stray_order(saga_id)).status_code == 202
    api.settle()

    listed = api.client.get("/api/sagas", params={"cleanup": "unconfirmed"})
    bad = api.client.get("/api/sagas", params={"cleanup": "maybe"})

    assert api.saga(saga_id)["cleanups"][0]["status"] == "confirmed"
    assert listed.status_code == 200 and listed.json() == []
    assert bad.status_code == 400


def test_a_clean_up_given_up_is_listed_as_unconfirmed_and_an_operator_retries_it(refused_cancels: Api) -> None:
    api = refused_cancels
    saga_id = api.order()
    other = api.order()
    api.wait(5)
    assert api.client.post("/api/events", json=stray_order(saga_id)).status_code == 202
    api.settle()
    api.wait(5)  # the clean-up's cancel_order is refused, then given up

    listed = api.client.get("/api/sagas", params={"cleanup": "unconfirmed"}).json()

    assert [entry["id"] for entry in listed] == [saga_id]
    assert other not in [entry["id"] for entry in listed]
    assert listed[0]["cleanups"][0] == {**listed[0]["cleanups"][0], "id": "stray-order", "status": "unconfirmed"}
    retried = api.client.post(f"/api/sagas/{saga_id}/retry", headers=ADMIN)
    assert retried.status_code == 202
    api.settle()
    api.wait(5)  # the order's cancel_order, both attempts refused
    api.wait(5)  # then the stray order's, both refused
    after = api.saga(saga_id)
    assert after["status"] == "COMPENSATION_FAILED"
    assert after["cleanups"][0]["id"] == "stray-order" and after["cleanups"][0]["status"] == "unconfirmed"
    assert len(api.sent(saga_id, "cancel_order")) == 4 * POLICY.compensation_attempts


# ------------------------------------------------------------ command size


LIMIT = 64 * 1024
"""SAGA_MAX_BODY_BYTES by default: the largest body taken, and the largest envelope sent."""


def order_with_note(note: str) -> dict[str, Any]:
    details = {**cast(dict[str, Any], ORDER["order_details"]), "note": note}
    return {**ORDER, "order_details": details}


def test_an_order_whose_command_would_be_larger_than_an_envelope_may_be_is_a_413_and_writes_nothing(
    healthy: Api,
) -> None:
    api = healthy
    compact = json.dumps(order_with_note(""), separators=(",", ":"))
    exactly_the_body_limit = json.dumps(order_with_note("n" * (LIMIT - len(compact))), separators=(",", ":"))
    assert len(exactly_the_body_limit.encode()) == LIMIT
    euros = order_with_note("€" * 11_000)  # 33 KB as UTF-8, 66 KB as the ASCII JSON of a command

    refused = [
        api.client.post("/api/orders", content=exactly_the_body_limit, headers={"Content-Type": "application/json"}),
        api.client.post("/api/orders", json=euros),
    ]

    assert [response.status_code for response in refused] == [413, 413]
    assert all("create_order command would be" in response.json()["error"] for response in refused)
    assert api.client.get("/api/sagas").json() == []


def test_an_order_whose_command_is_exactly_as_large_as_an_envelope_may_be_is_taken_and_sent(healthy: Api) -> None:
    api = healthy
    assert api.client.post("/api/orders", json=order_with_note("")).status_code == 202
    padding = LIMIT - sent_sizes(api)[0]  # every saga's ids and timestamp are as long

    one_byte_over = api.client.post("/api/orders", json=order_with_note("n" * (padding + 1)))
    taken = api.client.post("/api/orders", json=order_with_note("n" * padding))
    api.settle()

    assert one_byte_over.status_code == 413 and taken.status_code == 202, taken.text
    assert sent_sizes(api)[1:] == [LIMIT]
    assert api.saga(taken.json()["saga_id"])["status"] == "COMPLETED"


def sent_sizes(api: Api) -> list[int]:
    """The sizes in bytes of the create_order envelopes sent, as the orchestrator wrote them."""
    api.settle()
    sent = api.container.memory_transport().sent
    return [len(encode_json(envelope).encode()) for envelope in sent if envelope["type"] == "create_order"]


def test_the_size_intake_reckons_is_the_size_of_the_command_sent(healthy: Api) -> None:
    api = healthy
    body = '{"customer_id": "c\\u00e9", "order_details": {"foodItems": [{"price": 1E1, "quantity": 2}], "n": "€\\n\\"", "x": [null, true, 1.50]}}'
    request = decode_json(body)

    assert api.client.post("/api/orders", content=body, headers={"Content-Type": "application/json"}).status_code == 202

    assert sent_sizes(api) == [create_order_bytes(request["customer_id"], request["order_details"])]
