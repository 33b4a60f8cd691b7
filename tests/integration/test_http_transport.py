"""The HTTP transport end to end: `saga serve` with SAGA_TRANSPORT=http, and the participants
played by `saga simulate --transport http` in a separate process, both on loopback.

Two orchestrators serve most tests: a patient one (default deadlines, an events token)
and an impatient one (half-second deadlines, two compensation attempts, the scheduler
at a closed port). Each test starts the simulator it needs on the port the
orchestrator was given.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from tests.support.metrics import counters
from tests.support.scenarios import (
    FAILURE_PATHS,
    FINAL,
    STEP_COMMANDS,
    assert_all_complete,
    assert_completes,
    assert_ends,
    assert_fails_with_compensations,
    events_of_failure,
    history,
    start_order,
)
from tests.support.servers import free_port, saga_process, wait_for_status

TOKEN = "s3cret-events-token"
PARTICIPANT_URL_VARIABLES = ("ORDER_SERVICE_URL", "USER_SERVICE_URL", "PAYMENT_SERVICE_URL", "SCHEDULER_SERVICE_URL")


def orchestrator_env(database_url: str, participants: str, **overrides: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "SAGA_TRANSPORT": "http",
        **{name: participants for name in PARTICIPANT_URL_VARIABLES},
        "SAGA_EVENTS_TOKEN": TOKEN,
        "SAGA_RELAY_POLL_SECONDS": "0.05",
        "SAGA_SWEEP_INTERVAL_SECONDS": "0.1",
    }
    env.update(overrides)
    return env


@dataclass
class Stack:
    """A running orchestrator and the port its participants are expected on."""

    base: str
    participant_port: int
    folder: Path

    def simulator(self, *options: str) -> AbstractContextManager[str]:
        log = self.folder / f"simulator-{uuid.uuid4().hex[:8]}.log"
        # SAGA_TRANSPORT is the orchestrator's business; a developer's shell must not break the simulator.
        return saga_process(
            ["simulate", "--transport", "http", *options], {"SAGA_TRANSPORT": "memory"}, log, port=self.participant_port
        )

    def async_simulator(self, *options: str) -> AbstractContextManager[str]:
        return self.simulator("--async", "--orchestrator-url", self.base, "--events-token", TOKEN, *options)

    def counter(self, name: str) -> int:
        return counters(self.base).get(name, 0)

    def saga(self, saga_id: str) -> dict[str, Any]:
        saga: dict[str, Any] = requests.get(f"{self.base}/api/sagas/{saga_id}", timeout=5).json()
        return saga

    def log(self) -> str:
        return (self.folder / "orchestrator.log").read_text()


@contextmanager
def orchestrator(folder: Path, env: dict[str, str], participant_port: int) -> Iterator[Stack]:
    with saga_process(["serve"], env, folder / "orchestrator.log") as base:
        yield Stack(base, participant_port, folder)


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Default deadlines (30 s): any re-send it makes comes from the outbox relay, not a deadline."""
    folder = tmp_path_factory.mktemp("patient")
    port = free_port()
    env = orchestrator_env(f"sqlite:///{folder / 'saga.db'}", f"http://127.0.0.1:{port}")
    with orchestrator(folder, env, port) as stack:
        yield stack


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Half-second deadlines, one re-send, two compensation attempts; the scheduler never answers."""
    folder = tmp_path_factory.mktemp("impatient")
    port = free_port()
    env = orchestrator_env(
        f"sqlite:///{folder / 'saga.db'}",
        f"http://127.0.0.1:{port}",
        SCHEDULER_SERVICE_URL=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        SAGA_STEP_DEADLINE_SECONDS="0.5",
        SAGA_STEP_RESENDS="1",
        SAGA_COMPENSATION_ATTEMPTS="2",
        SAGA_COMPENSATION_BACKOFF_SECONDS="0.05",
        SAGA_SWEEP_INTERVAL_SECONDS="0.05",
    )
    with orchestrator(folder, env, port) as stack:
        yield stack


# ------------------------------------------------------------------ happy paths


@pytest.mark.postgres
def test_seed_example_completes_on_postgres_sync_and_async(fresh_database_url: str, tmp_path: Path) -> None:
    port = free_port()
    with orchestrator(tmp_path, orchestrator_env(fresh_database_url, f"http://127.0.0.1:{port}"), port) as stack:
        with stack.simulator():
            assert_completes(stack.base)
        with stack.async_simulator():
            assert_completes(stack.base)


def test_seed_example_completes_with_replies_in_the_response(patient: Stack) -> None:
    # This simulator knows no orchestrator URL: the replies can only have come in the responses.
    with patient.simulator("--delay-ms", "20"):
        saga = assert_completes(patient.base)
    assert all(entry["message_id"] for entry in saga["history"] if entry["kind"] == "event")  # the participant's ids


def test_seed_example_completes_with_replies_posted_to_api_events(patient: Stack) -> None:
    # The orchestrator demands the token on /api/events, so completing proves the events came that way.
    with patient.async_simulator("--delay-ms", "20"):
        assert_completes(patient.base)


def test_async_replies_of_many_sagas_all_arrive(patient: Stack) -> None:
    with patient.async_simulator():
        assert_all_complete(patient.base, 10, timeout=30)


# ------------------------------------------------------------ failing steps


@pytest.mark.parametrize(("step", "compensations"), FAILURE_PATHS)
def test_failure_event_at_each_step_compensates(patient: Stack, step: str, compensations: list[str]) -> None:
    with patient.simulator("--fail-step", step):
        saga = assert_fails_with_compensations(patient.base, step, compensations)
    assert history(saga, "event") == events_of_failure(step, compensations)
    assert "simulated failure" in saga["error"]


@pytest.mark.parametrize(("step", "compensations"), FAILURE_PATHS)
def test_4xx_at_each_step_fails_it_and_compensates(patient: Stack, step: str, compensations: list[str]) -> None:
    rejected_before = patient.counter("commands_rejected")
    with patient.simulator("--reject-step", step):
        saga = assert_fails_with_compensations(patient.base, step, compensations)
    # A 4xx stands for the step's failure event: the same history as a real one.
    assert history(saga, "event") == events_of_failure(step, compensations)
    assert "answered 422" in saga["error"] and "simulated rejection" in saga["error"]
    assert patient.counter("commands_rejected") - rejected_before == 1


def test_failure_in_async_mode_compensates_too(patient: Stack) -> None:
    with patient.async_simulator("--fail-step", "UPDATE_ORDER_STATUS"):
        saga = assert_fails_with_compensations(patient.base, "UPDATE_ORDER_STATUS", ["revert_payment", "cancel_order"])
    assert history(saga, "event") == events_of_failure("UPDATE_ORDER_STATUS", ["revert_payment", "cancel_order"])


def test_a_flaky_participant_still_completes_every_saga(patient: Stack) -> None:
    undelivered_before = patient.counter("commands_undelivered")
    with patient.simulator("--flaky", "0.3", "--seed", "7"):
        assert_all_complete(patient.base, 20, timeout=60)
    # 100 commands at 30 %: the 503 path was taken, many times over.
    assert patient.counter("commands_undelivered") - undelivered_before >= 10


# --------------------------------------------------------------- participants down


def test_order_service_down_from_the_start_ends_failed_with_the_order_unknown(impatient: Stack) -> None:
    # No simulator: every participant is unreachable. CREATE_ORDER fails by deadline, which
    # calls for cancel_order with a null order_id (the order may exist); that cannot be
    # delivered either. An order whose id was never reported is recorded as unknown and
    # does not page an operator (docs/contract.md, "Compensations").
    saga = assert_ends(
        impatient.base,
        "FAILED",
        "CREATE_ORDER",
        ["create_order", "create_order", "cancel_order", "cancel_order"],
    )
    assert saga["error"] == "CREATE_ORDER failed: no reply after 2 attempts"
    assert saga["compensations"] == [
        {
            "kind": "order",
            "command": "cancel_order",
            "id": None,
            "status": "unknown",
            "detail": "not confirmed after 2 attempts: no reply",
        }
    ]
    assert history(saga, "event") == []
    assert history(saga, "deadline") == ["create_order", "create_order", "cancel_order", "cancel_order"]


def test_scheduler_down_past_the_deadline_undoes_payment_and_order(impatient: Stack) -> None:
    with impatient.simulator():
        saga = assert_ends(
            impatient.base,
            "FAILED",
            "START_TIMER",
            [*STEP_COMMANDS[:4], "start_order_timer", "start_order_timer", "revert_payment", "cancel_order"],
        )
    assert saga["error"] == "START_TIMER failed: no reply after 2 attempts"
    assert history(saga, "event")[-2:] == ["payment.released", "order.cancelled"]
    resends = [
        entry for entry in saga["history"] if entry["kind"] == "command" and entry["type"] == "start_order_timer"
    ]
    assert resends[0]["message_id"] == resends[1]["message_id"]  # a re-send, not a new command


def test_a_compensation_refused_with_4xx_is_retried_then_compensation_failed(impatient: Stack) -> None:
    with impatient.simulator("--fail-step", "GET_PAYMENT_INFO", "--reject-step", "CANCEL_ORDER"):
        saga = assert_ends(
            impatient.base,
            "COMPENSATION_FAILED",
            "GET_PAYMENT_INFO",
            ["create_order", "get_payment_info", "cancel_order", "cancel_order"],
        )
    assert "cancel_order not confirmed after 2 attempts" in saga["error"] and "answered 422" in saga["error"]
    assert history(saga, "event")[-2:] == ["order.cancellation_failed", "order.cancellation_failed"]


# ----------------------------------------------------------------- POST /api/events


def envelope(event_type: str, saga_id: str, payload: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = {
        "type": event_type,
        "correlation_id": saga_id,
        "timestamp": "2026-11-28T12:00:00.000000",
        "payload": payload,
        "message_id": str(uuid.uuid4()),
    }
    body.update(changes)
    return body


def post_event(base: str, body: Any = None, token: str | None = TOKEN, **kwargs: Any) -> requests.Response:
    headers = kwargs.pop("headers", {"Content-Type": "application/json"})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = kwargs.pop("data", None)
    if data is None:
        data = json.dumps(body).encode()
    return requests.post(f"{base}/api/events", data=data, headers=headers, timeout=5, **kwargs)


def waiting_saga(stack: Stack) -> str:
    """A saga whose create_order was accepted and never answered (the simulator stays silent)."""
    saga_id = start_order(stack.base)
    wait_until(lambda: stack.saga(saga_id)["awaiting"] is not None, "create_order awaited")
    return saga_id


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


UNAUTHORIZED: list[tuple[str, dict[str, str]]] = [
    ("no token", {}),
    ("wrong token", {"Authorization": "Bearer not-the-token"}),
    ("token without scheme", {"Authorization": TOKEN}),
    ("other scheme", {"Authorization": f"Basic {TOKEN}"}),
    ("token with a suffix", {"Authorization": f"Bearer {TOKEN}x"}),
]


def test_events_without_the_right_token_get_401_and_change_nothing(patient: Stack) -> None:
    with patient.simulator("--silent-step", "CREATE_ORDER"):
        saga_id = waiting_saga(patient)
        before = patient.saga(saga_id)
        good = envelope("order.created", saga_id, {"order_id": "order_from_test"})
        for case, auth in UNAUTHORIZED:
            response = post_event(patient.base, good, token=None, headers={"Content-Type": "application/json", **auth})
            assert response.status_code == 401, (case, response.text)
            assert response.json()["success"] is False
        assert patient.saga(saga_id) == before

        # The same event with the token is applied, and the saga runs on to the end.
        accepted = post_event(patient.base, good)
        assert accepted.status_code == 202 and accepted.json()["outcome"] == "applied"
        again = post_event(patient.base, good)
        assert again.status_code == 202 and again.json()["outcome"] == "duplicate"
        saga = wait_for_status(patient.base, saga_id, FINAL)
    assert saga["status"] == "COMPLETED" and saga["order_id"] == "order_from_test"


def bad_events(saga_id: str) -> list[tuple[str, dict[str, Any], int, str]]:
    good = envelope("order.created", saga_id, {"order_id": "order_1"})
    json_type = {"Content-Type": "application/json"}
    return [
        ("not JSON", {"data": b"{not json", "headers": dict(json_type)}, 400, "JSON"),
        ("not UTF-8", {"data": b'{"type": "\xff"}', "headers": dict(json_type)}, 400, "UTF-8"),
        ("array", {"body": [good]}, 400, "JSON object"),
        ("no type", {"body": {k: v for k, v in good.items() if k != "type"}}, 400, "type"),
        ("unknown type", {"body": {**good, "type": "order.shipped"}}, 400, "unknown event type"),
        ("a command", {"body": {**good, "type": "create_order"}}, 400, "unknown event type"),
        (
            "no correlation id",
            {"body": {k: v for k, v in good.items() if k != "correlation_id"}},
            400,
            "correlation_id",
        ),
        ("correlation id not a UUID", {"body": {**good, "correlation_id": "saga-1"}}, 400, "UUID"),
        ("bad timestamp", {"body": {**good, "timestamp": "yesterday"}}, 400, "timestamp"),
        ("payload not an object", {"body": {**good, "payload": "order_1"}}, 400, "payload"),
        ("missing order_id", {"body": {**good, "payload": {}}}, 400, "payload.order_id"),
        ("message_id a number", {"body": {**good, "message_id": 7}}, 400, "message_id"),
        (
            "text/plain",
            {"data": json.dumps(good).encode(), "headers": {"Content-Type": "text/plain"}},
            415,
            "application/json",
        ),
        ("too large", {"body": {**good, "payload": {"order_id": "x" * 70_000}}}, 413, "at most"),
        ("unknown saga", {"body": {**good, "correlation_id": str(uuid.uuid4())}}, 404, "no saga"),
    ]


def test_bad_events_are_refused_and_change_nothing(patient: Stack) -> None:
    with patient.simulator("--silent-step", "CREATE_ORDER"):
        saga_id = waiting_saga(patient)
        before = patient.saga(saga_id)
        bad_before = patient.counter("events_bad")
        for case, request, status, message in bad_events(saga_id):
            response = post_event(patient.base, **request)
            assert response.status_code == status, (case, response.text)
            assert response.json()["success"] is False and message in response.json()["error"], (case, response.text)
        assert patient.saga(saga_id) == before
    assert patient.counter("events_bad") - bad_before == 12  # the ones that got past the HTTP checks


# ------------------------------------------------------ a reply naming another saga


class RogueParticipant(ThreadingHTTPServer):
    """Accepts the first saga's create_order (202) and answers every later one with
    `order.created` for that first saga: a misrouted reply."""

    daemon_threads = True

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), RogueHandler)
        self.victim: str | None = None
        self.received: list[tuple[str, str]] = []
        """(saga id, message id) of every command, in arrival order."""
        self.lock = threading.Lock()

    def answer(self, command: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.received.append((command["correlation_id"], command["message_id"]))
            if self.victim is None:
                self.victim = command["correlation_id"]
            victim = self.victim
        if command["correlation_id"] == victim:
            return 202, {"accepted": True}
        return 200, envelope("order.created", victim, {"order_id": "order_of_someone_else"})

    def attempts(self, saga_id: str) -> list[str]:
        with self.lock:
            return [message_id for received_saga, message_id in self.received if received_saga == saga_id]


class RogueHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RogueParticipant

    def do_POST(self) -> None:
        command = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        status, body = self.server.answer(command)
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def rogue_participant(port: int) -> Iterator[RogueParticipant]:
    server = RogueParticipant(port)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_reply_naming_another_saga_is_a_failed_attempt_and_not_applied(patient: Stack) -> None:
    with rogue_participant(patient.participant_port) as rogue:
        victim = start_order(patient.base)
        wait_until(lambda: bool(rogue.attempts(victim)), "the first saga's create_order")
        intruder = start_order(patient.base)
        # With a 30 s deadline, a second attempt this soon can only be the relay re-sending a failed one.
        wait_until(lambda: len(rogue.attempts(intruder)) >= 2, "the second saga's create_order re-sent")
        attempts = rogue.attempts(intruder)
        assert len(set(attempts)) == 1  # the same command (message_id) each time
        for saga_id in (victim, intruder):
            saga = patient.saga(saga_id)
            assert saga["status"] == "STARTED" and saga["current_step"] == "CREATE_ORDER", saga
            assert saga["order_id"] is None and saga["ignored_events"] == 0
            assert history(saga, "event") == [] and history(saga, "command") == ["create_order"]
    assert f"names saga {victim}, not {intruder}" in patient.log()


# ------------------------------------------------- the simulator's own promises


class FlakyEventsEndpoint(ThreadingHTTPServer):
    """Stands in for the orchestrator's /api/events: 503 twice, then 202."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), EventsHandler)
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        """(path, Authorization header, body) of every delivery attempt."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class EventsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FlakyEventsEndpoint

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        self.server.calls.append((self.path, self.headers.get("Authorization", ""), body))
        self.send_response(503 if len(self.server.calls) <= 2 else 202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_async_simulator_retries_a_delivery_the_orchestrator_could_not_take(tmp_path: Path) -> None:
    events = FlakyEventsEndpoint()
    threading.Thread(target=events.serve_forever, args=(0.05,), daemon=True).start()
    saga_id = str(uuid.uuid4())
    command = {
        "type": "create_order",
        "correlation_id": saga_id,
        "timestamp": "2026-11-28T12:00:00.000000+00:00",
        "payload": {"customer_id": "cust_123", "order_details": {}, "saga_id": saga_id},
        "message_id": str(uuid.uuid4()),
    }
    options = ["simulate", "--transport", "http", "--async", "--orchestrator-url", events.url, "--events-token", TOKEN]
    try:
        with saga_process(options, {"SAGA_TRANSPORT": "memory"}, tmp_path / "simulator.log") as simulator:
            response = requests.post(f"{simulator}/commands", json=command, timeout=5)
            assert response.status_code == 202
            wait_until(lambda: len(events.calls) >= 3, "the third delivery attempt")
    finally:
        events.shutdown()
        events.server_close()
    assert len(events.calls) == 3
    assert {path for path, _, _ in events.calls} == {"/api/events"}
    assert {auth for _, auth, _ in events.calls} == {f"Bearer {TOKEN}"}
    delivered = [body for _, _, body in events.calls]
    assert delivered[0] == delivered[1] == delivered[2]  # the same event, message_id included, each time
    assert delivered[0]["type"] == "order.created" and delivered[0]["correlation_id"] == saga_id
