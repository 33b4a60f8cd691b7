"""The platform profile answers as the platform's real services do (docs/contract.md, "The platform's services"), row by row."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from saga.adapters.clock import ManualClock
from saga.adapters.envelope import parse_event
from saga.adapters.platform_participants import Knob, Knobs, Ledger, PlatformParticipants
from saga.domain.messages import JsonObject
from saga.ports.ledger import ResourceKind, ResourceStatus

START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ORDER_DETAILS: JsonObject = {
    "foodItems": [{"name": "Burger", "price": 12.99, "quantity": 2}],
    "deliveryFee": 1.5,
    "deliveryLocation": "North Campus",
    "storeLocation": "Main St",
}


def command(command_type: str, payload: JsonObject, saga_id: str | None = None) -> JsonObject:
    return {
        "type": command_type,
        "correlation_id": saga_id or str(uuid.uuid4()),
        "timestamp": "2026-11-28T12:00:00.000000+00:00",
        "payload": payload,
        "message_id": str(uuid.uuid4()),
    }


def create_order(saga_id: str, customer_id: str = "cust_1", **details: Any) -> JsonObject:
    return command(
        "create_order",
        {"customer_id": customer_id, "order_details": {**ORDER_DETAILS, **details}, "saga_id": saga_id},
        saga_id,
    )


def authorize(saga_id: str, order_id: str, method: str = "pm_1", amount: int = 2748) -> JsonObject:
    return command(
        "authorize_payment",
        {
            "order_id": order_id,
            "customer_id": "cust_1",
            "amount_cents": amount,
            "currency": "USD",
            "payment_info": {"stripeCustomerId": "cus_1", "paymentMethodId": method},
            "customer": {
                "clerkUserId": "cust_1",
                "stripeCustomerId": "cus_1",
                "userStripeCard": {"payment_method_id": method},
            },
            "order": {"amount": amount, "description": f"Payment for order {order_id}"},
        },
        saga_id,
    )


def only(replies: list[JsonObject]) -> JsonObject:
    assert len(replies) == 1, replies
    return replies[0]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def services(clock: ManualClock) -> PlatformParticipants:
    return PlatformParticipants(clock=clock.now)


def test_replies_carry_source_no_message_id_and_each_service_its_timestamp(services: PlatformParticipants) -> None:
    saga_id = str(uuid.uuid4())
    created = only(services.handle(create_order(saga_id)))
    info = only(services.handle(command("get_payment_info", {"user_id": "cust_1"}, saga_id)))
    payment = only(services.handle(authorize(saga_id, created["payload"]["order_id"])))
    for reply, source in [(created, "order-service"), (info, "user-service"), (payment, "payment-service")]:
        assert "message_id" not in reply and reply["source"] == source and reply["correlation_id"] == saga_id
        parse_event(reply)  # the orchestrator reads each as it is
    assert created["timestamp"] == "2026-11-28T12:00:00.000000"  # naive UTC
    assert payment["timestamp"] == "2026-11-28T12:00:00.000000"
    assert info["timestamp"] == "2026-11-28T12:00:00.000000+00:00"
    assert created["payload"] == {
        "order_id": created["payload"]["order_id"],
        "customer_id": "cust_1",
        "status": "PENDING",
        "saga_id": saga_id,
    }
    assert set(info["payload"]["payment_info"]) == {"stripeCustomerId", "paymentMethodId"}
    assert payment["type"] == "payment.authorized" and payment["payload"]["payment_id"].startswith("pi_")


def test_a_resent_command_is_processed_again(services: PlatformParticipants) -> None:
    saga_id = str(uuid.uuid4())
    create = create_order(saga_id)
    first, second = only(services.handle(create)), only(services.handle(create))
    assert first["payload"]["order_id"] != second["payload"]["order_id"]
    order_id = first["payload"]["order_id"]
    pay = authorize(saga_id, order_id)
    payments = {only(services.handle(pay))["payload"]["payment_id"] for _ in range(2)}
    assert len(payments) == 2
    rows = services.ledger.of_saga(saga_id)
    assert sorted((row.kind, row.status) for row in rows) == sorted(
        [(ResourceKind.ORDER, ResourceStatus.PENDING)] * 2 + [(ResourceKind.PAYMENT, ResourceStatus.AUTHORIZED)] * 2
    )
    assert all(row.order_id == order_id for row in rows if row.kind is ResourceKind.PAYMENT)


@pytest.mark.parametrize(
    ("customer_id", "details"),
    [
        ("cust_1", {"foodItems": [{"name": "Feast", "price": 500, "quantity": 2}]}),  # total 1000.00
        ("cust_1", {"deliveryFee": "1000.00"}),
        ("c" * 37, {}),
        ("cust_1", {"deliveryLocation": None}),
        ("cust_1", {"foodItems": [{"name": "Burger", "quantity": 1}]}),
        ("", {}),
    ],
)
def test_create_order_is_silent_for_what_its_table_cannot_hold(
    services: PlatformParticipants, customer_id: str, details: JsonObject
) -> None:
    saga_id = str(uuid.uuid4())
    assert services.handle(create_order(saga_id, customer_id, **details)) == []
    assert services.ledger.rows() == []


def test_create_order_takes_the_largest_values_its_table_holds(services: PlatformParticipants) -> None:
    saga_id = str(uuid.uuid4())
    details = {"foodItems": [{"name": "Feast", "price": "333.33", "quantity": 3}], "deliveryFee": 999.99}
    assert only(services.handle(create_order(saga_id, "c" * 36, **details)))["type"] == "order.created"


def test_update_order_status_answers_or_stays_silent(services: PlatformParticipants) -> None:
    saga_id = str(uuid.uuid4())
    order_id = only(services.handle(create_order(saga_id)))["payload"]["order_id"]
    assert services.handle(command("update_order_status", {"order_id": str(uuid.uuid4()), "status": "CREATED"})) == []
    assert services.handle(command("update_order_status", {"order_id": order_id, "status": "SHIPPED"})) == []
    assert services.handle(command("update_order_status", {"order_id": order_id})) == []
    updated = only(services.handle(command("update_order_status", {"order_id": order_id, "status": "CREATED"})))
    assert updated["type"] == "order.status_updated"
    assert updated["payload"] == {"order_id": order_id, "status": "CREATED", "saga_id": saga_id}
    assert [row.status for row in services.ledger.of_saga(saga_id)] == [ResourceStatus.CREATED]


def test_a_failing_status_update_sends_the_whole_sql_error(clock: ManualClock) -> None:
    services = PlatformParticipants(Knobs(fail=Knob.of("update_order_status")), clock=clock.now)
    saga_id = str(uuid.uuid4())
    order_id = only(services.handle(create_order(saga_id)))["payload"]["order_id"]
    failed = only(services.handle(command("update_order_status", {"order_id": order_id, "status": "CREATED"})))
    assert failed["type"] == "order.status_update_failed" and failed["payload"]["order_id"] == order_id
    error = failed["payload"]["error"]
    assert len(error) > 500 and error.count("\n") >= 3 and "[SQL: UPDATE orders" in error and order_id in error
    assert [row.status for row in services.ledger.of_saga(saga_id)] == [ResourceStatus.PENDING]


def test_cancel_order_needs_an_order_id_and_confirms_a_final_order(services: PlatformParticipants) -> None:
    saga_id = str(uuid.uuid4())
    order_id = only(services.handle(create_order(saga_id)))["payload"]["order_id"]
    assert services.handle(command("cancel_order", {"order_id": None, "saga_id": saga_id, "reason": "x"})) == []
    assert services.handle(command("cancel_order", {"order_id": "nope", "saga_id": saga_id, "reason": "x"})) == []
    for _ in range(2):  # also when already final
        cancelled = only(services.handle(command("cancel_order", {"order_id": order_id, "reason": "no card"})))
        assert cancelled["type"] == "order.cancelled"
        assert cancelled["payload"] == {"order_id": order_id, "reason": "no card"}
    assert [row.status for row in services.ledger.of_saga(saga_id)] == [ResourceStatus.CANCELLED]


@pytest.mark.parametrize(
    ("user_id", "error"),
    [("unknown_7", "User not found"), ("nocard_7", "Default payment method not set for user")],
)
def test_get_payment_info_fails_with_the_user_services_text(
    services: PlatformParticipants, user_id: str, error: str
) -> None:
    failed = only(services.handle(command("get_payment_info", {"user_id": user_id})))
    assert failed["type"] == "user.payment_info_failed" and failed["payload"] == {"error": error}
    assert services.handle(command("get_payment_info", {})) == []


def test_authorize_payment_reads_only_the_nested_payload(services: PlatformParticipants) -> None:
    saga_id = str(uuid.uuid4())
    ours_only = command(
        "authorize_payment",
        {"order_id": "o1", "customer_id": "c", "amount_cents": 2748, "currency": "USD", "payment_info": {}},
        saga_id,
    )
    failed = only(services.handle(ours_only))
    assert failed["type"] == "payment.failed" and failed["payload"]["error"] == "INVALID_PAYLOAD"
    assert failed["payload"]["message"]
    assert only(services.handle(authorize(saga_id, "o1", amount=49)))["payload"]["error"] == "INVALID_AMOUNT"
    declined = only(services.handle(authorize(saga_id, "o1", method="pm_card_chargeDeclined")))
    assert declined["payload"] == {"error": "STRIPE_CARD_ERROR", "message": "Your card was declined."}
    assert services.ledger.rows() == []


def test_a_declined_user_gets_a_card_the_payment_service_declines(services: PlatformParticipants) -> None:
    info = only(services.handle(command("get_payment_info", {"user_id": "declined_1"})))
    method = info["payload"]["payment_info"]["paymentMethodId"]
    assert only(services.handle(authorize(str(uuid.uuid4()), "o1", method=method)))["payload"]["error"] == (
        "STRIPE_CARD_ERROR"
    )


def test_revert_payment_answers_payment_failed_never_release_failed(clock: ManualClock) -> None:
    services = PlatformParticipants(clock=clock.now)
    saga_id = str(uuid.uuid4())
    payment_id = only(services.handle(authorize(saga_id, "o1")))["payload"]["payment_id"]
    null = only(services.handle(command("revert_payment", {"payment_id": None, "order_id": "o1", "saga_id": saga_id})))
    assert null["type"] == "payment.failed" and null["payload"]["error"] == "INVALID_PAYLOAD"
    unknown = only(services.handle(command("revert_payment", {"payment_id": "pi_x"})))
    assert unknown["type"] == "payment.failed" and unknown["payload"]["error"] == "not_found"
    rejecting = PlatformParticipants(Knobs(fail=Knob.of("revert_payment")), clock=clock.now)
    other = only(rejecting.handle(authorize(saga_id, "o1")))["payload"]["payment_id"]
    assert only(rejecting.handle(command("revert_payment", {"payment_id": other})))["payload"]["error"] == (
        "stripe_error"
    )
    released = only(services.handle(command("revert_payment", {"payment_id": payment_id, "reason": "x"})))
    assert released["type"] == "payment.released" and released["payload"]["payment_id"] == payment_id
    assert [row.status for row in services.ledger.of_saga(saga_id)] == [ResourceStatus.REVERTED]


def test_the_timer_is_an_http_api(services: PlatformParticipants) -> None:
    assert services.start_timer({"OrderId": "o1", "CustomerId": "c1", "RunnerId": ""}).status == 200
    assert services.start_timer({"CustomerId": "c1"}).status == 400
    assert services.handle(command("start_order_timer", {"order_id": "o1"})) == []  # nobody reads timer_commands
    assert services.timers_started == [{"OrderId": "o1", "CustomerId": "c1", "RunnerId": ""}]


def test_knobs_make_a_service_slow_silent_or_answer_twice(clock: ManualClock) -> None:
    knobs = Knobs(
        slow=Knob.of("create_order"), slow_by=timedelta(seconds=90), silent=Knob.of("user"), twice=Knob.of("payment")
    )
    services = PlatformParticipants(knobs, clock=clock.now)
    saga_id = str(uuid.uuid4())
    assert services.handle(create_order(saga_id)) == []
    assert len(services.ledger.of_saga(saga_id)) == 1  # the work is done at once, the reply waits
    clock.advance(timedelta(seconds=89))
    assert services.release() == [] and services.held() == 1
    clock.advance(timedelta(seconds=1))
    late = only(services.release())
    assert late["type"] == "order.created" and late["timestamp"] == "2026-11-28T12:00:00.000000"  # made on time
    assert services.handle(command("get_payment_info", {"user_id": "cust_1"})) == []
    twice = services.handle(authorize(saga_id, late["payload"]["order_id"]))
    assert [reply["type"] for reply in twice] == ["payment.authorized"] * 2
    assert len({reply["payload"]["payment_id"] for reply in twice}) == 2
    silent_timer = PlatformParticipants(Knobs(silent=Knob.of("timer")), clock=clock.now)
    assert silent_timer.start_timer({"OrderId": "o1"}).delay is None


def test_a_knob_at_a_rate_applies_to_about_that_share_and_repeats_with_its_seed(clock: ManualClock) -> None:
    def silenced(seed: int) -> list[bool]:
        services = PlatformParticipants(Knobs(silent=Knob.of("order", rate=0.2), seed=seed), clock=clock.now)
        return [services.handle(create_order(str(uuid.uuid4()))) == [] for _ in range(500)]

    first = silenced(7)
    assert 60 <= sum(first) <= 140
    assert silenced(7) == first


def test_unknown_knob_targets_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown service or command"):
        Knob.of("CREATE_ORDER")
    with pytest.raises(ValueError, match="rate"):
        Knob.of("order", rate=1.5)


def test_the_ledger_file_is_json_lines_of_the_current_rows(tmp_path: Any, clock: ManualClock) -> None:
    path = tmp_path / "ledger.jsonl"
    services = PlatformParticipants(clock=clock.now, ledger=Ledger(path))
    saga_id = str(uuid.uuid4())
    order_id = only(services.handle(create_order(saga_id)))["payload"]["order_id"]
    services.handle(command("cancel_order", {"order_id": order_id}))
    services.ledger.flush()
    assert path.read_text().splitlines() == [
        f'{{"saga_id": "{saga_id}", "kind": "order", "id": "{order_id}", "status": "CANCELLED", "order_id": "{order_id}"}}'
    ]
    assert services.ledger.jsonl() == path.read_text()


def test_the_user_service_skips_commands_sent_before_it_started(services: PlatformParticipants) -> None:
    early = command("get_payment_info", {"user_id": "cust_1"})
    early["timestamp"] = "2026-11-28T11:59:59.000000+00:00"
    assert services.handle(early) == []
    resent = {**early, "timestamp": "2026-11-28T12:00:00.000000+00:00"}
    assert only(services.handle(resent))["type"] == "user.payment_info_retrieved"
    order_first = create_order(str(uuid.uuid4()))
    order_first["timestamp"] = "2026-11-28T11:00:00"
    assert only(services.handle(order_first))["type"] == "order.created"  # the order service reads from earliest


def test_a_restarted_simulation_finds_its_orders_and_payments_in_its_ledger_file(
    tmp_path: Any, clock: ManualClock
) -> None:
    path = tmp_path / "ledger.jsonl"
    before = PlatformParticipants(clock=clock.now, ledger=Ledger(path))
    saga_id = str(uuid.uuid4())
    order_id = only(before.handle(create_order(saga_id)))["payload"]["order_id"]
    payment_id = only(before.handle(authorize(saga_id, order_id)))["payload"]["payment_id"]
    before.ledger.flush()
    after = PlatformParticipants(clock=clock.now, ledger=Ledger(path))
    assert only(after.handle(command("cancel_order", {"order_id": order_id})))["type"] == "order.cancelled"
    assert only(after.handle(command("revert_payment", {"payment_id": payment_id})))["type"] == "payment.released"
    assert sorted(row.status for row in after.ledger.rows()) == [ResourceStatus.CANCELLED, ResourceStatus.REVERTED]
