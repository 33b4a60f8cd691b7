"""Each behaviour of the platform's real services, reproduced by the platform profile in
the in-memory harness, ends consistent: the audit of the sagas against the services'
ledger finds nothing, or only what a saga names as left undone (docs/contract.md,
"Compensations" and "No orphan resources").

A participant team can run the same scenarios against its own services by passing
them to `SagaHarness(participants=...)`.
"""

from __future__ import annotations

from datetime import timedelta

from saga.adapters.platform_participants import Knob, Knobs
from saga.domain.messages import JsonObject
from saga.domain.policy import SagaPolicy
from saga.domain.saga import CreateOrderSaga, SagaStatus, UndoStatus
from saga.ports.ledger import ResourceKind, ResourceStatus
from saga.service_layer.audit import AuditReport, FindingKind, audit, audited
from saga.testing import SagaHarness

# The seed's order, with the field the order service's table requires.
SEED: JsonObject = {
    "foodItems": [{"name": "Burger", "price": 12.99, "quantity": 1}],
    "deliveryLocation": "North Campus",
}
POLICY = SagaPolicy(
    step_deadline=timedelta(seconds=10),
    step_resends=1,
    compensation_attempts=3,
    compensation_backoff=timedelta(seconds=1),
)


def platform(knobs: Knobs | None = None, policy: SagaPolicy = POLICY) -> SagaHarness:
    return SagaHarness(profile="platform", knobs=knobs, policy=policy)


def settle(harness: SagaHarness, saga_id: str, minutes: int = 10) -> CreateOrderSaga:
    """Lets time pass (slow replies arrive, deadlines pass) until the saga and its clean-ups settle."""
    for _ in range(minutes * 6):
        saga = harness.saga(saga_id)
        assert harness.platform is not None
        if saga.status.is_final and saga.awaiting is None and harness.platform.held() == 0:
            return saga
        harness.advance(timedelta(seconds=10))
    return harness.saga(saga_id)


def audit_of(harness: SagaHarness, *saga_ids: str) -> AuditReport:
    return audit((audited(harness.saga(saga_id)) for saga_id in saga_ids), harness.ledger.rows())


def ledger_of(harness: SagaHarness, saga_id: str) -> list[tuple[ResourceKind, ResourceStatus]]:
    return sorted((row.kind, row.status) for row in harness.ledger.rows() if row.saga_id == saga_id)


def test_the_seed_order_completes_against_the_platform_services() -> None:
    harness = platform()

    saga_id = harness.start_order("cust_123", SEED)

    saga = settle(harness, saga_id)
    assert saga.status is SagaStatus.COMPLETED, saga.error
    authorize = next(c for c in harness.sent if c["type"] == "authorize_payment")
    assert authorize["payload"]["customer"]["clerkUserId"] == "cust_123"
    assert authorize["payload"]["order"] == {"amount": 1299, "description": f"Payment for order {saga.order_id}"}
    assert ledger_of(harness, saga_id) == [
        (ResourceKind.ORDER, ResourceStatus.CREATED),
        (ResourceKind.PAYMENT, ResourceStatus.AUTHORIZED),
    ]
    payments = [row for row in harness.ledger.rows() if row.kind is ResourceKind.PAYMENT]
    assert [(row.id, row.status, row.order_id) for row in payments] == [
        (saga.payment_id, ResourceStatus.AUTHORIZED, saga.order_id)
    ]
    assert audit_of(harness, saga_id).consistent


def test_a_revert_rejected_with_payment_failed_is_resent_and_the_order_still_cancelled() -> None:
    # docs/contract.md, "The platform's services": a rejected revert_payment arrives as payment.failed; the cancel_order
    # after it must still go out, or the order stays PENDING for good.
    harness = platform(Knobs(fail=Knob.of("timer", "revert_payment")))

    saga_id = harness.start_order("cust_123", SEED)
    saga = settle(harness, saga_id)

    assert saga.status is SagaStatus.COMPENSATION_FAILED
    reverts = [c for c in harness.sent if c["type"] == "revert_payment"]
    assert len(reverts) == POLICY.compensation_attempts
    assert [(u.command_type, u.resource_id, u.status) for u in saga.compensations] == [
        ("revert_payment", saga.payment_id, UndoStatus.UNCONFIRMED),
        ("cancel_order", saga.order_id, UndoStatus.CONFIRMED),
    ]
    assert saga.error is not None and str(saga.payment_id) in saga.error and "stripe_error" in saga.error
    report = audit_of(harness, saga_id)
    # The only live resource is the payment the saga names as left undone.
    assert report.consistent
    assert [f.resources for f in report.findings if f.kind is FindingKind.ACKNOWLEDGED] == [
        (f"payment:{saga.payment_id}:AUTHORIZED",)
    ]


def test_a_create_order_answered_after_its_deadline_leaves_no_pending_order() -> None:
    # The order is made at once but its reply comes after the step failed by deadline; the
    # cancel_order sent with a null order_id is silently dropped by the real service. The
    # late order.created names the order: the cancel goes out again with it.
    harness = platform(Knobs(slow=Knob.of("create_order"), slow_by=timedelta(seconds=45)))

    saga_id = harness.start_order("cust_123", SEED)
    saga = settle(harness, saga_id)

    assert saga.status is SagaStatus.FAILED
    cancels = [c["payload"]["order_id"] for c in harness.sent if c["type"] == "cancel_order"]
    assert cancels[0] is None and cancels[-1] is not None
    assert ledger_of(harness, saga_id) == [(ResourceKind.ORDER, ResourceStatus.CANCELLED)] * 2
    assert audit_of(harness, saga_id).consistent


def test_a_resent_create_order_answered_twice_leaves_no_second_order_on_a_completed_saga() -> None:
    harness = platform(Knobs(twice=Knob.of("create_order")))

    saga_id = harness.start_order("cust_123", SEED)
    saga = settle(harness, saga_id)

    assert saga.status is SagaStatus.COMPLETED
    assert [(u.command_type, u.status) for u in saga.cleanups] == [("cancel_order", UndoStatus.CONFIRMED)]
    assert ledger_of(harness, saga_id) == [
        (ResourceKind.ORDER, ResourceStatus.CANCELLED),
        (ResourceKind.ORDER, ResourceStatus.CREATED),
        (ResourceKind.PAYMENT, ResourceStatus.AUTHORIZED),
    ]
    assert audit_of(harness, saga_id).consistent


def test_an_authorize_payment_answered_twice_leaves_no_second_payment() -> None:
    harness = platform(Knobs(twice=Knob.of("authorize_payment")))

    saga_id = harness.start_order("cust_123", SEED)
    saga = settle(harness, saga_id)

    assert saga.status is SagaStatus.COMPLETED
    assert [(u.command_type, u.status) for u in saga.cleanups] == [("revert_payment", UndoStatus.CONFIRMED)]
    statuses = sorted(row.status for row in harness.ledger.rows() if row.kind is ResourceKind.PAYMENT)
    assert statuses == [ResourceStatus.AUTHORIZED, ResourceStatus.REVERTED]
    assert audit_of(harness, saga_id).consistent


def test_the_long_sql_text_of_a_failed_status_update_is_one_bounded_line() -> None:
    harness = platform(Knobs(fail=Knob.of("update_order_status")))

    saga_id = harness.start_order("cust_123", SEED)
    saga = settle(harness, saga_id)

    assert saga.status is SagaStatus.FAILED
    assert saga.error is not None and len(saga.error) <= 500 and "\n" not in saga.error
    reasons = [c["payload"]["reason"] for c in harness.sent if c["type"] in ("revert_payment", "cancel_order")]
    assert reasons and all(len(reason) <= 500 and "\n" not in reason for reason in reasons)
    assert audit_of(harness, saga_id).consistent


def test_a_silent_order_service_at_create_order_ends_failed_without_paging_anyone() -> None:
    harness = platform(Knobs(silent=Knob.of("create_order")))

    saga_id = harness.start_order("cust_123", SEED)
    saga = settle(harness, saga_id)

    assert saga.status is SagaStatus.FAILED
    assert [(u.command_type, u.resource_id, u.status) for u in saga.compensations] == [
        ("cancel_order", None, UndoStatus.UNKNOWN)
    ]
    assert ledger_of(harness, saga_id) == []
    assert audit_of(harness, saga_id).consistent


def test_an_order_the_order_service_cannot_hold_is_undone_by_saga_deadline() -> None:
    # A total over 999.99 is silently dropped by the order service (numeric(5,2) columns).
    harness = platform()
    big = {**SEED, "foodItems": [{"name": "Feast", "price": 1000, "quantity": 1}]}

    saga_id = harness.start_order("cust_123", big)
    saga = settle(harness, saga_id)

    assert saga.status is SagaStatus.FAILED
    assert ledger_of(harness, saga_id) == []
    assert audit_of(harness, saga_id).consistent


def test_a_user_without_payment_info_cancels_the_order() -> None:
    harness = platform(Knobs(fail=Knob.of("user")))

    saga_id = harness.start_order("cust_123", SEED)
    saga = settle(harness, saga_id)

    assert saga.status is SagaStatus.FAILED
    assert saga.error is not None and "User not found" in saga.error
    assert ledger_of(harness, saga_id) == [(ResourceKind.ORDER, ResourceStatus.CANCELLED)]
    assert audit_of(harness, saga_id).consistent


def test_a_slow_payment_service_past_the_deadline_leaves_no_authorized_payment() -> None:
    harness = platform(Knobs(slow=Knob.of("authorize_payment"), slow_by=timedelta(seconds=45)))

    saga_id = harness.start_order("cust_123", SEED)
    saga = settle(harness, saga_id)

    assert saga.status is SagaStatus.FAILED
    statuses = [row.status for row in harness.ledger.rows() if row.kind is ResourceKind.PAYMENT]
    assert statuses and all(status is ResourceStatus.REVERTED for status in statuses)
    assert audit_of(harness, saga_id).consistent


def test_an_order_service_that_never_cancels_is_named_and_only_that_order() -> None:
    harness = platform(Knobs(fail=Knob.of("timer"), silent=Knob.of("cancel_order")))

    saga_id = harness.start_order("cust_123", SEED)
    saga = settle(harness, saga_id)

    assert saga.status is SagaStatus.COMPENSATION_FAILED
    assert [(u.command_type, u.status) for u in saga.compensations] == [
        ("revert_payment", UndoStatus.CONFIRMED),
        ("cancel_order", UndoStatus.UNCONFIRMED),
    ]
    report = audit_of(harness, saga_id)
    assert report.consistent
    assert [f.resources for f in report.findings if f.kind is FindingKind.ACKNOWLEDGED] == [
        (f"order:{saga.order_id}:CREATED",)
    ]
