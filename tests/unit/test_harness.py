"""Whole sagas through the in-memory adapters: outbox, relay, intake and deadlines together."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from saga.domain.messages import JsonObject
from saga.domain.policy import SagaPolicy
from saga.domain.saga import NotCancellable, SagaStatus
from saga.testing import SagaHarness

BURGER: JsonObject = {"foodItems": [{"name": "Burger", "price": 12.99, "quantity": 2}], "deliveryFee": 1.5}


def command_types(harness: SagaHarness, saga_id: str) -> list[str]:
    return [c["type"] for c in harness.sent if c["correlation_id"] == saga_id]


def test_happy_path_sends_each_command_once_with_the_contract_payloads() -> None:
    harness = SagaHarness()
    saga_id = harness.start_order("cust_1", BURGER)
    saga = harness.saga(saga_id)
    assert saga.status is SagaStatus.COMPLETED
    assert saga.amount_cents == 2748
    assert command_types(harness, saga_id) == [
        "create_order",
        "get_payment_info",
        "authorize_payment",
        "update_order_status",
        "start_order_timer",
    ]
    authorize = next(c for c in harness.sent if c["type"] == "authorize_payment")
    assert authorize["payload"]["amount_cents"] == 2748 and authorize["payload"]["order_id"] == saga.order_id
    assert all(c["message_id"] and c["timestamp"].endswith("+00:00") for c in harness.sent)
    assert harness.metrics.get("events_applied") == 5


@pytest.mark.parametrize(
    ("step", "compensations"),
    [
        ("CREATE_ORDER", []),
        ("GET_PAYMENT_INFO", ["cancel_order"]),
        ("AUTHORIZE_PAYMENT", ["cancel_order"]),
        ("UPDATE_ORDER_STATUS", ["revert_payment", "cancel_order"]),
        ("START_TIMER", ["revert_payment", "cancel_order"]),
    ],
)
def test_failure_at_each_step_runs_the_contract_compensations(step: str, compensations: list[str]) -> None:
    harness = SagaHarness(fail_step=step)
    saga_id = harness.start_order("cust_1", BURGER)
    saga = harness.saga(saga_id)
    assert saga.status is SagaStatus.FAILED
    sent = command_types(harness, saga_id)
    assert sent[len(sent) - len(compensations) :] == compensations
    assert [entry.type for entry in saga.history if entry.kind == "command"] == sent


def test_a_silent_step_is_resent_with_the_same_message_id_then_compensated() -> None:
    policy = SagaPolicy(step_deadline=timedelta(seconds=10), step_resends=2)
    harness = SagaHarness(policy=policy, silent_step="AUTHORIZE_PAYMENT")
    saga_id = harness.start_order("cust_1", BURGER)
    assert harness.saga(saga_id).status is SagaStatus.STARTED
    harness.advance(timedelta(seconds=9))
    assert command_types(harness, saga_id).count("authorize_payment") == 1
    harness.advance(timedelta(seconds=1))
    harness.advance(timedelta(seconds=10))
    authorizations = [c for c in harness.sent if c["type"] == "authorize_payment"]
    assert len(authorizations) == 3 and len({c["message_id"] for c in authorizations}) == 1
    harness.advance(timedelta(seconds=10))
    saga = harness.saga(saga_id)
    assert saga.status is SagaStatus.FAILED
    assert command_types(harness, saga_id)[-2:] == ["revert_payment", "cancel_order"]
    assert "no reply after 3 attempts" in (saga.error or "")


def test_a_compensation_that_keeps_failing_ends_compensation_failed() -> None:
    policy = SagaPolicy(compensation_attempts=3, compensation_backoff=timedelta(seconds=1))
    harness = SagaHarness(
        policy=policy,
        fail_step="CANCEL_ORDER",
        participants={
            "user": lambda command: {
                "type": "user.payment_info_failed",
                "correlation_id": command["correlation_id"],
                "timestamp": "2026-11-28T12:00:00",
                "payload": {"error": "no card on file"},
            }
        },
    )
    saga_id = harness.start_order("cust_1", BURGER)
    for _ in range(3):
        harness.advance(timedelta(seconds=8))
    saga = harness.saga(saga_id)
    assert saga.status is SagaStatus.COMPENSATION_FAILED
    cancels = [c for c in harness.sent if c["type"] == "cancel_order"]
    assert len(cancels) == 3 and len({c["message_id"] for c in cancels}) == 3
    assert "no card on file" in (saga.error or "")


def test_a_participant_that_raises_is_retried_not_lost() -> None:
    calls: list[str] = []

    def flaky_timer(command: JsonObject) -> JsonObject | None:
        calls.append(command["message_id"])
        if len(calls) == 1:
            raise ConnectionError("timer service restarting")
        return {
            "type": "timer.started",
            "correlation_id": command["correlation_id"],
            "timestamp": "2026-11-28T12:00:00",
            "payload": {},
        }

    harness = SagaHarness(participants={"timer": flaky_timer})
    saga_id = harness.start_order("cust_1", BURGER)
    assert harness.saga(saga_id).status is SagaStatus.STARTED
    assert len(calls) == 1
    harness.advance(timedelta(seconds=1))  # the outbox retries it after a short backoff
    assert harness.saga(saga_id).status is SagaStatus.COMPLETED
    assert len(calls) == 2 and calls[0] == calls[1]
    assert harness.metrics.get("commands_undelivered") == 1


def test_events_by_hand_bad_unknown_and_duplicate_change_nothing() -> None:
    harness = SagaHarness(silent_step="START_TIMER")
    saga_id = harness.start_order("cust_1", BURGER)
    before = harness.saga(saga_id)
    harness.transport.deliver(b"\xff not json")
    harness.deliver(
        {
            "type": "timer.started",
            "correlation_id": "6f1c1d2e-0000-4000-8000-000000000000",
            "timestamp": "2026-11-28T12:00:00",
            "payload": {},
        }
    )
    duplicate = {
        "type": "payment.authorized",
        "correlation_id": saga_id,
        "timestamp": "2026-11-28T12:00:00",
        "payload": {"payment_id": before.payment_id},
        "message_id": "m-1",
    }
    harness.deliver(duplicate)
    harness.deliver(duplicate)
    after = harness.saga(saga_id)
    assert after.status is SagaStatus.STARTED and after.payment_id == before.payment_id
    assert after.ignored_events == 2  # once for not fitting, once as a duplicate
    assert after.history[-1].detail == "duplicate message_id"
    assert harness.metrics.get("events_bad") == 1
    assert harness.metrics.get("events_unknown_saga") == 1
    assert harness.metrics.get("events_duplicate") == 1
    harness.deliver(
        {
            "type": "timer.started",
            "correlation_id": saga_id,
            "timestamp": "2026-11-28T12:00:00",
            "payload": {},
            "message_id": "m-2",
        }
    )
    assert harness.saga(saga_id).status is SagaStatus.COMPLETED


def test_cancelling_a_started_saga_undoes_it() -> None:
    harness = SagaHarness(silent_step="UPDATE_ORDER_STATUS")
    saga_id = harness.start_order("cust_1", BURGER)
    harness.orchestrator.cancel(saga_id, "customer changed their mind")
    harness.run_until_idle()
    saga = harness.saga(saga_id)
    assert saga.status is SagaStatus.CANCELLED
    assert command_types(harness, saga_id)[-2:] == ["revert_payment", "cancel_order"]
    with pytest.raises(NotCancellable):
        harness.orchestrator.cancel(saga_id, "again")
    assert harness.saga(saga_id).status is SagaStatus.CANCELLED


def test_an_undeliverable_command_is_dropped_after_its_deadline_and_the_resend_goes_out() -> None:
    down = True

    def timer_service(command: JsonObject) -> JsonObject | None:
        if down:
            raise ConnectionError("timer service down")
        return {
            "type": "timer.started",
            "correlation_id": command["correlation_id"],
            "timestamp": "2026-11-28T12:00:00",
            "payload": {},
        }

    harness = SagaHarness(participants={"timer": timer_service}, policy=SagaPolicy(step_deadline=timedelta(seconds=5)))
    saga_id = harness.start_order("cust_1", BURGER)
    for _ in range(12):  # the deadline waits while the command is unsent; once dropped, it re-sends
        harness.advance(timedelta(seconds=1))
    expired = harness.metrics.get("commands_expired")
    assert expired >= 1
    assert harness.saga(saga_id).awaiting is not None and harness.saga(saga_id).awaiting.attempts == 2  # type: ignore[union-attr]
    down = False
    for _ in range(4):  # the re-send's retry backoff is at most a few seconds here
        harness.advance(timedelta(seconds=1))
    saga = harness.saga(saga_id)
    assert saga.status is SagaStatus.COMPLETED
    assert harness.metrics.get("commands_expired") == expired


def test_a_broker_outage_holds_deadlines_and_the_saga_finishes_when_it_is_back() -> None:
    harness = SagaHarness(policy=SagaPolicy(step_deadline=timedelta(seconds=5), step_resends=1))
    harness.transport.broker_down = True
    saga_id = harness.start_order("cust_1", BURGER)
    for _ in range(10):  # ten minutes of outage: far past every deadline and re-send
        harness.advance(timedelta(minutes=1))
    waiting = harness.saga(saga_id)
    assert waiting.status is SagaStatus.STARTED and waiting.awaiting is not None
    assert waiting.awaiting.attempts == 1 and harness.sent == []
    assert harness.metrics.get("deadlines_postponed") >= 10 and harness.metrics.get("commands_expired") == 0
    harness.transport.broker_down = False
    harness.advance(timedelta(minutes=1))
    assert harness.saga(saga_id).status is SagaStatus.COMPLETED
    assert command_types(harness, saga_id).count("create_order") == 1


def test_cancelling_withdraws_a_step_command_that_never_left() -> None:
    harness = SagaHarness()
    harness.transport.broker_down = True
    saga_id = harness.start_order("cust_1", BURGER)
    harness.orchestrator.cancel(saga_id, "changed my mind")
    harness.transport.broker_down = False
    harness.advance(timedelta(minutes=1))
    saga = harness.saga(saga_id)
    assert saga.status is SagaStatus.CANCELLED
    assert command_types(harness, saga_id) == ["cancel_order"]


@pytest.mark.parametrize("currency", ["ÄÖÜ", "US", "usd1", 840])
def test_a_currency_that_is_not_a_three_letter_code_is_refused(currency: object) -> None:
    from saga.domain.money import InvalidOrder

    harness = SagaHarness()
    with pytest.raises(InvalidOrder, match="currency"):
        harness.orchestrator.start("cust_1", {**BURGER, "currency": currency})
    assert harness.sent == []


def test_a_lowercase_currency_code_is_accepted_in_capitals() -> None:
    harness = SagaHarness()
    saga = harness.saga(harness.start_order("cust_1", {**BURGER, "currency": "sgd"}))
    assert saga.currency == "SGD" and saga.status is SagaStatus.COMPLETED


def test_the_readmes_failure_examples_end_as_the_readme_says() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    examples = re.findall(r"`SAGA_SIMULATE_FAIL_STEP=([A-Z_,]+) make run` ends `([A-Z_]+)`", readme)
    examples += [
        (steps, status)
        for status, steps in re.findall(r"end in\s+`([A-Z_]+)`: `SAGA_SIMULATE_FAIL_STEP=([A-Z_,]+) make run`", readme)
    ]
    assert examples == [("AUTHORIZE_PAYMENT", "FAILED"), ("AUTHORIZE_PAYMENT,CANCEL_ORDER", "COMPENSATION_FAILED")]
    for fail_steps, status in examples:
        harness = SagaHarness(fail_step=fail_steps, policy=SagaPolicy(compensation_backoff=timedelta(seconds=1)))
        saga_id = harness.start_order("cust_1", BURGER)
        for _ in range(10):
            harness.advance(timedelta(seconds=31))
        assert harness.saga(saga_id).status.value == status, fail_steps


def test_a_clean_up_after_the_end_does_not_say_the_saga_ended_again(caplog: pytest.LogCaptureFixture) -> None:
    harness = SagaHarness()
    caplog.set_level("INFO", logger="saga.service_layer.orchestrator")
    saga_id = harness.start_order("cust_1", BURGER)

    harness.deliver(
        {
            "type": "order.created",
            "correlation_id": saga_id,
            "timestamp": "2026-11-28T12:00:00",
            "payload": {"order_id": "a-second-order"},
        }
    )

    saga = harness.saga(saga_id)
    assert saga.status is SagaStatus.COMPLETED
    assert [(u.resource_id, u.status.value) for u in saga.cleanups] == [("a-second-order", "confirmed")]
    assert [r.getMessage() for r in caplog.records].count(f"saga {saga_id} ended COMPLETED") == 1
