"""The in-memory harness with the platform profile: the real services' behaviour, in process."""

from __future__ import annotations

from datetime import timedelta

import pytest

from saga.adapters.platform_participants import Knob, Knobs
from saga.domain.messages import JsonObject
from saga.domain.policy import SagaPolicy
from saga.domain.saga import SagaStatus
from saga.ports.ledger import ResourceKind, ResourceStatus
from saga.testing import SagaHarness

ORDER: JsonObject = {
    "foodItems": [{"name": "Burger", "price": 12.99, "quantity": 2}],
    "deliveryFee": 1.5,
    "deliveryLocation": "North Campus",
}
POLICY = SagaPolicy(step_deadline=timedelta(seconds=10), step_resends=1, compensation_attempts=2)


def authorizing_payment_service(command: JsonObject) -> JsonObject:
    """A payment service that authorizes whatever it is sent (the profile's reads the nested payload)."""
    return {
        "type": "payment.authorized",
        "correlation_id": command["correlation_id"],
        "timestamp": "2026-11-28T12:00:00.123456",
        "payload": {"payment_id": "pi_test"},
        "source": "payment-service",
    }


def run_out(harness: SagaHarness, minutes: int = 10) -> None:
    for _ in range(minutes * 6):
        harness.advance(timedelta(seconds=10))


def test_the_timer_is_reached_over_its_http_api_and_no_timer_command_is_published() -> None:
    harness = SagaHarness(profile="platform", participants={"payment": authorizing_payment_service})
    saga_id = harness.start_order("cust_1", ORDER)
    saga = harness.saga(saga_id)
    assert saga.status is SagaStatus.COMPLETED
    assert harness.platform is not None
    assert harness.platform.timers_started == [{"OrderId": saga.order_id, "CustomerId": "cust_1", "RunnerId": ""}]
    assert "start_order_timer" not in [command["type"] for command in harness.sent]
    assert [(row.kind, row.id, row.status) for row in harness.ledger.of_saga(saga_id)] == [
        (ResourceKind.ORDER, saga.order_id, ResourceStatus.CREATED)
    ]


def test_a_timer_api_that_refuses_fails_the_step() -> None:
    harness = SagaHarness(
        profile="platform",
        knobs=Knobs(fail=Knob.of("timer")),
        participants={"payment": authorizing_payment_service},
        policy=POLICY,
    )
    saga_id = harness.start_order("cust_1", ORDER)
    run_out(harness, 2)
    saga = harness.saga(saga_id)
    assert saga.status.is_final and saga.status is not SagaStatus.COMPLETED
    assert any(entry.type == "timer.failed" for entry in saga.history)
    assert "400" in (saga.error or "")


def test_a_silent_timer_api_is_resent_within_the_step_and_then_fails_by_deadline() -> None:
    harness = SagaHarness(
        profile="platform",
        knobs=Knobs(silent=Knob.of("timer")),
        participants={"payment": authorizing_payment_service},
        policy=POLICY,
    )
    saga_id = harness.start_order("cust_1", ORDER)
    run_out(harness)
    saga = harness.saga(saga_id)
    assert saga.status.is_final and saga.status is not SagaStatus.COMPLETED
    assert "START_TIMER" in (saga.error or "")
    assert harness.metrics.get("commands_undelivered") >= 2


def test_an_order_the_order_service_cannot_hold_leaves_nothing_behind() -> None:
    harness = SagaHarness(profile="platform", policy=POLICY)
    saga_id = harness.start_order("cust_1", {**ORDER, "deliveryLocation": None})
    run_out(harness)
    assert harness.saga(saga_id).status.is_final
    assert harness.ledger.rows() == []
    creates = [command for command in harness.sent if command["type"] == "create_order"]
    assert len(creates) == 2 and creates[0]["message_id"] == creates[1]["message_id"]


def test_a_resent_create_order_answered_twice_makes_two_orders_in_the_ledger() -> None:
    harness = SagaHarness(profile="platform", knobs=Knobs(twice=Knob.of("create_order")), policy=POLICY)
    saga_id = harness.start_order("cust_1", ORDER)
    run_out(harness, 2)
    orders = [row for row in harness.ledger.of_saga(saga_id) if row.kind is ResourceKind.ORDER]
    assert len(orders) == 2 and orders[0].id != orders[1].id


def test_a_slow_reply_arrives_after_its_deadline() -> None:
    harness = SagaHarness(
        profile="platform", knobs=Knobs(slow=Knob.of("order"), slow_by=timedelta(seconds=25)), policy=POLICY
    )
    saga_id = harness.start_order("cust_1", ORDER)
    assert harness.platform is not None and harness.platform.held() == 1
    harness.advance(timedelta(seconds=10))  # deadline: re-sent, processed again, also slow
    assert harness.platform.held() == 2 and len(harness.ledger.of_saga(saga_id)) == 2
    run_out(harness, 2)
    assert harness.platform.held() == 0
    saga = harness.saga(saga_id)
    assert [entry.type for entry in saga.history].count("order.created") == 2


def test_an_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        SagaHarness(profile="production")
    with pytest.raises(AttributeError, match="platform profile"):
        _ = SagaHarness().ledger


def test_the_seed_order_completes_against_the_platform_profile_and_the_audit_agrees() -> None:
    harness = SagaHarness(profile="platform")
    saga = harness.saga(harness.start_order("cust_1", ORDER))
    assert saga.status is SagaStatus.COMPLETED
    authorize = next(command for command in harness.sent if command["type"] == "authorize_payment")
    assert authorize["payload"]["customer"]["userStripeCard"]["payment_method_id"].startswith("pm_")
    assert sorted((row.kind, row.id, row.status) for row in harness.ledger.rows()) == [
        (ResourceKind.ORDER, saga.order_id, ResourceStatus.CREATED),
        (ResourceKind.PAYMENT, saga.payment_id, ResourceStatus.AUTHORIZED),
    ]
    report = harness.audit()
    assert report.consistent and report.findings == [] and report.sagas == 1


@pytest.mark.parametrize(
    "knobs",
    [
        Knobs(twice=Knob.of("create_order")),
        Knobs(twice=Knob.of("authorize_payment")),
        Knobs(slow=Knob.of("create_order"), slow_by=timedelta(seconds=25)),
        Knobs(slow=Knob.of("authorize_payment"), slow_by=timedelta(seconds=25)),
        Knobs(silent=Knob.of("user")),
        Knobs(fail=Knob.of("update_order_status")),
        Knobs(fail=Knob.of("timer")),
    ],
    ids=["create twice", "authorize twice", "create slow", "authorize slow", "user silent", "sql error", "timer 400"],
)
def test_each_misbehaviour_ends_consistent_by_the_audit(knobs: Knobs) -> None:
    harness = SagaHarness(profile="platform", knobs=knobs, policy=POLICY)
    saga_id = harness.start_order("cust_1", ORDER)
    run_out(harness)
    assert harness.saga(saga_id).status.is_final
    report = harness.audit()
    assert report.consistent, report.findings
    assert [finding.kind for finding in report.findings] == []


def test_a_payment_that_can_never_be_reverted_is_named_and_acknowledged_by_the_audit() -> None:
    knobs = Knobs(fail=Knob.of("update_order_status", "revert_payment"))
    harness = SagaHarness(profile="platform", knobs=knobs, policy=POLICY)
    saga_id = harness.start_order("cust_1", ORDER)
    run_out(harness)
    saga = harness.saga(saga_id)
    assert saga.status is SagaStatus.COMPENSATION_FAILED
    report = harness.audit()
    assert report.consistent
    [finding] = report.findings
    assert finding.kind == "acknowledged" and finding.resources == (f"payment:{saga.payment_id}:AUTHORIZED",)


def test_a_clean_up_still_running_is_in_flight_and_once_given_up_is_acknowledged() -> None:
    knobs = Knobs(twice=Knob.of("create_order"), silent=Knob.of("cancel_order"))
    harness = SagaHarness(profile="platform", knobs=knobs, policy=POLICY)
    saga_id = harness.start_order("cust_1", ORDER)
    saga = harness.saga(saga_id)
    assert saga.status is SagaStatus.COMPLETED and len(saga.cleanups) == 1
    assert [finding.kind for finding in harness.audit().findings] == ["in_flight"]
    run_out(harness)
    [cleanup] = harness.saga(saga_id).cleanups
    assert cleanup.status == "unconfirmed"
    report = harness.audit()
    assert report.consistent
    assert [(finding.kind, finding.resources) for finding in report.findings] == [
        ("acknowledged", (f"order:{cleanup.resource_id}:PENDING",))
    ]
