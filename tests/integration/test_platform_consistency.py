"""What the platform's real services did to sagas (docs/contract.md, "The platform's services"),
reproduced with `saga simulate --profile platform` over a real broker and PostgreSQL: each
ends consistent by `saga audit` run as the CLI against the simulator's ledger
(docs/contract.md, "Compensations" and "No orphan resources").

One orchestrator and one database serve the whole module; each test starts the simulator
with its own knobs (same consumer group, same timer port) and audits every saga so far
against every simulator's ledger.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.support.kafka import new_setup
from tests.support.platform_rig import (
    PlatformRig,
    applied_successes,
    is_settled,
    new_database,
    saga_json,
    unconfirmed,
)
from tests.support.scenarios import FINAL, SEED_ORDER, history, start_order
from tests.support.servers import free_port, wait_for_status

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

ATTEMPTS = 2
TIMINGS = {
    "SAGA_STEP_DEADLINE_SECONDS": "2",
    "SAGA_STEP_RESENDS": "1",
    "SAGA_COMPENSATION_ATTEMPTS": str(ATTEMPTS),
    "SAGA_COMPENSATION_BACKOFF_SECONDS": "0.2",
    "SAGA_HTTP_READ_TIMEOUT_SECONDS": "1",
    "SAGA_SWEEP_INTERVAL_SECONDS": "0.2",
    "SAGA_RELAY_POLL_SECONDS": "0.2",
}
SLOWER_THAN_THE_STEP_MS = "6000"
"""Past both sends of a step (deadline 2 s, one re-send): the reply comes after the step failed."""


@pytest.fixture(scope="module")
def rig(kafka_bootstrap: str, postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformRig]:
    with new_database(postgres_url) as url:
        yield PlatformRig(
            new_setup(kafka_bootstrap), url, tmp_path_factory.mktemp("platform"), free_port(), timings=TIMINGS
        )


@pytest.fixture(scope="module")
def base(rig: PlatformRig) -> Iterator[str]:
    with rig.serve() as url:
        yield url


def run_saga(rig: PlatformRig, base: str, order: dict[str, Any] | None = None) -> tuple[dict[str, Any], Any]:
    """Starts one order and waits until it settled and the audit agrees; returns the saga and that audit."""
    saga_id = start_order(base, order or SEED_ORDER)
    wait_for_status(base, saga_id, FINAL, timeout=60)
    deadline = time.monotonic() + 30
    while not is_settled(saga_json(base, saga_id)) and time.monotonic() < deadline:
        time.sleep(0.05)
    audited = rig.settle(timeout=60)
    assert audited.settled_and_consistent, audited.output
    return saga_json(base, saga_id), audited


def ledger_of(rig: PlatformRig, saga_id: str) -> list[tuple[str, str]]:
    return sorted((row["kind"], row["status"]) for row in rig.ledger_rows() if row["saga_id"] == saga_id)


def acknowledged_for(audited: Any, saga_id: str) -> list[list[str]]:
    return [list(finding["resources"]) for finding in audited.findings("acknowledged") if finding["saga_id"] == saga_id]


def test_the_seed_order_completes_with_the_payload_the_payment_service_reads(rig: PlatformRig, base: str) -> None:
    # Observed: every saga failed at AUTHORIZE_PAYMENT with INVALID_PAYLOAD.
    with rig.simulator():
        saga, audited = run_saga(rig, base)
    assert saga["status"] == "COMPLETED", saga["error"]
    assert set(applied_successes(saga).values()) == {1}
    assert ledger_of(rig, saga["id"]) == [("order", "CREATED"), ("payment", "AUTHORIZED")]
    assert acknowledged_for(audited, saga["id"]) == []


def test_a_revert_refused_with_payment_failed_still_cancels_the_order_and_names_only_that_payment(
    rig: PlatformRig, base: str
) -> None:
    # Observed: payment.failed answering revert_payment was ignored until each attempt's
    # deadline passed, and cancel_order was never sent after it: the order stayed PENDING.
    with rig.simulator("--fail", "timer", "--fail", "revert_payment"):
        saga, audited = run_saga(rig, base)
    payment_id = saga["payment_id"]
    assert saga["status"] == "COMPENSATION_FAILED", saga
    assert [(u["command"], u["id"], u["status"]) for u in saga["compensations"]] == [
        ("revert_payment", payment_id, "unconfirmed"),
        ("cancel_order", saga["order_id"], "confirmed"),
    ]
    assert payment_id in saga["error"] and "stripe_error" in saga["error"]
    assert history(saga, "command").count("revert_payment") == ATTEMPTS
    refusals = [entry for entry in saga["history"] if entry["type"] == "payment.failed"]
    assert refusals and all(entry["kind"] == "event" for entry in refusals), "a refusal was not read as one"
    assert ledger_of(rig, saga["id"]) == [("order", "CANCELLED"), ("payment", "AUTHORIZED")]
    assert acknowledged_for(audited, saga["id"]) == [[f"payment:{payment_id}:AUTHORIZED"]]


def test_a_create_order_answered_after_its_deadline_leaves_no_pending_order(rig: PlatformRig, base: str) -> None:
    # Observed: the late order.created named the order while cancel_order went out with a
    # null order_id; the order stayed PENDING. Here both sends of create_order are answered late.
    with rig.simulator("--slow", "create_order", "--slow-ms", SLOWER_THAN_THE_STEP_MS):
        saga, audited = run_saga(rig, base)
    assert saga["status"] == "FAILED", saga
    assert history(saga, "command")[:3] == ["create_order", "create_order", "cancel_order"]
    assert ledger_of(rig, saga["id"]) == [("order", "CANCELLED"), ("order", "CANCELLED")]
    orders = sorted(row["id"] for row in rig.ledger_rows() if row["saga_id"] == saga["id"])
    # The cancel_order sent with a null id learned the first order's id; the second order was
    # undone as a compensation or, once the saga had ended, as a clean-up.
    undone = [*saga["compensations"], *saga["cleanups"]]
    assert sorted((u["command"], u["id"], u["status"]) for u in undone) == [
        ("cancel_order", order_id, "confirmed") for order_id in orders
    ]
    learned = [entry["detail"] for entry in saga["history"] if (entry["detail"] or "").startswith("learned order")]
    assert len(learned) == 1, saga["history"]
    assert unconfirmed(saga) == [] and acknowledged_for(audited, saga["id"]) == []


def test_a_create_order_processed_twice_leaves_no_second_order_on_a_completed_saga(rig: PlatformRig, base: str) -> None:
    # Observed: a re-sent create_order answered twice left a second, orphan PENDING order.
    with rig.simulator("--twice", "create_order"):
        saga, audited = run_saga(rig, base)
    assert saga["status"] == "COMPLETED", saga["error"]
    assert set(applied_successes(saga).values()) == {1}
    [cleanup] = saga["cleanups"]
    assert (cleanup["kind"], cleanup["command"], cleanup["status"]) == ("order", "cancel_order", "confirmed")
    assert cleanup["id"] not in (None, saga["order_id"])
    orders = {row["id"]: row["status"] for row in rig.ledger_rows() if row["saga_id"] == saga["id"]}
    assert orders == {saga["order_id"]: "CREATED", cleanup["id"]: "CANCELLED", saga["payment_id"]: "AUTHORIZED"}
    assert acknowledged_for(audited, saga["id"]) == []


def test_a_second_order_the_order_service_never_cancels_is_named_on_the_completed_saga(
    rig: PlatformRig, base: str
) -> None:
    # The order service drops cancel_order on its own failure: the saga stays COMPLETED and
    # lists the clean-up it could not confirm, naming exactly the second order.
    with rig.simulator("--twice", "create_order", "--fail", "cancel_order"):
        saga, audited = run_saga(rig, base)
    assert saga["status"] == "COMPLETED", saga["error"]
    orders = [row["id"] for row in rig.ledger_rows() if row["saga_id"] == saga["id"] and row["kind"] == "order"]
    [second] = [order_id for order_id in orders if order_id != saga["order_id"]]
    assert unconfirmed(saga) == [("order", "cancel_order", second)]
    assert acknowledged_for(audited, saga["id"]) == [[f"order:{second}:PENDING"]]


def test_the_sql_text_of_a_failed_status_update_is_one_bounded_line(rig: PlatformRig, base: str) -> None:
    # Observed: the whole multi-line SQL error went into the saga's error and every reason.
    with rig.simulator("--fail", "update_order_status"):
        saga, audited = run_saga(rig, base)
    assert saga["status"] == "FAILED", saga
    assert "SerializationFailure" in saga["error"]
    assert len(saga["error"]) <= 500 and saga["error"].isprintable()
    [failure] = [entry for entry in saga["history"] if entry["type"] == "order.status_update_failed"]
    assert len(failure["detail"]) <= 4000 and failure["detail"].isprintable()
    reasons = rig.command_reasons(saga["id"], expected=2)
    assert reasons and all(len(reason) <= 500 and reason.isprintable() for reason in reasons), reasons
    assert ledger_of(rig, saga["id"]) == [("order", "CANCELLED"), ("payment", "REVERTED")]
    assert acknowledged_for(audited, saga["id"]) == []
