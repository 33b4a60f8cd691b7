"""The invariants a torture run must keep, checked on what the API, the participants and the broker saw.

The compensation table is written here from the contract ("The saga", what a failure
undoes), not read from the code under test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "COMPENSATION_FAILED"})
FORWARD_SUCCESSES = (
    "order.created",
    "user.payment_info_retrieved",
    "payment.authorized",
    "order.status_updated",
    "timer.started",
)
COMPENSATION_CONFIRMATIONS = {"order.cancelled": "cancel_order", "payment.released": "revert_payment"}
COMPENSATION_COMMANDS = ("revert_payment", "cancel_order")

# The contract's table: the failed step, whether by its failure event (False) or by its
# deadline / a cancel (True), and the compensations sent, in order.
CONTRACT_COMPENSATIONS: Mapping[tuple[str, bool], tuple[str, ...]] = {
    ("CREATE_ORDER", False): (),
    ("CREATE_ORDER", True): ("cancel_order",),
    ("GET_PAYMENT_INFO", False): ("cancel_order",),
    ("GET_PAYMENT_INFO", True): ("cancel_order",),
    ("AUTHORIZE_PAYMENT", False): ("cancel_order",),
    ("AUTHORIZE_PAYMENT", True): ("revert_payment", "cancel_order"),
    ("UPDATE_ORDER_STATUS", False): ("revert_payment", "cancel_order"),
    ("UPDATE_ORDER_STATUS", True): ("revert_payment", "cancel_order"),
    ("START_TIMER", False): ("revert_payment", "cancel_order"),
    ("START_TIMER", True): ("revert_payment", "cancel_order"),
}
EXAMPLES = 5


@dataclass
class Check:
    name: str
    ok: bool
    summary: str
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "summary": self.summary, "examples": self.examples}


def _history(saga: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    history = saga.get("history") or []
    return [entry for entry in history if isinstance(entry, Mapping)]


def every_saga_terminal(sagas: Sequence[Mapping[str, Any]]) -> Check:
    open_ = [
        f"{saga['id']} {saga['status']} at {saga.get('current_step')}"
        for saga in sagas
        if saga["status"] not in TERMINAL
    ]
    return Check(
        "every saga terminal",
        not open_ and bool(sagas),
        f"{len(sagas) - len(open_):,} of {len(sagas):,} terminal",
        open_[:EXAMPLES],
    )


def no_command_lost(
    sagas: Sequence[Mapping[str, Any]],
    received: Mapping[str, int],
    withdrawn: Iterable[str],
    not_recorded: Sequence[str] = (),
) -> Check:
    """Each command message_id in a history reached its participant, unless its outbox row was
    withdrawn unsent. Command types in `not_recorded` go where no log records them (the timer's API)."""
    withdrawn_ids = set(withdrawn)
    commands: dict[str, str] = {}
    for saga in sagas:
        for entry in _history(saga):
            if entry.get("kind") == "command" and entry.get("message_id") and entry.get("type") not in not_recorded:
                commands[str(entry["message_id"])] = f"{saga['id']} {entry.get('type')}"
    lost = [
        what for message_id, what in commands.items() if message_id not in received and message_id not in withdrawn_ids
    ]
    excused = sum(1 for message_id in commands if message_id not in received and message_id in withdrawn_ids)
    return Check(
        "no command lost",
        not lost,
        f"{len(commands):,} command message_ids in histories, {len(commands) - len(lost) - excused:,} reached a "
        f"participant, {excused} withdrawn unsent, {len(lost)} lost",
        [f"never received: {what}" for what in lost[:EXAMPLES]],
    )


def no_success_applied_twice(sagas: Sequence[Mapping[str, Any]]) -> Check:
    """A step's success applies once; a compensation's confirmation at most once per compensation command sent."""
    twice: list[str] = []
    for saga in sagas:
        # An event naming a resource the saga does not hold is undone, not applied.
        applied = Counter(
            str(entry.get("type"))
            for entry in _history(saga)
            if entry.get("kind") == "event" and "not held" not in str(entry.get("detail") or "")
        )
        sent: Counter[str] = Counter()
        seen: set[str] = set()
        for entry in _history(saga):
            if entry.get("kind") == "command" and entry.get("type") in COMPENSATION_COMMANDS:
                message_id = str(entry.get("message_id"))
                if message_id not in seen:
                    seen.add(message_id)
                    sent[str(entry.get("type"))] += 1
        for event_type in FORWARD_SUCCESSES:
            if applied[event_type] > 1:
                twice.append(f"{saga['id']}: {event_type} applied {applied[event_type]} times")
        for event_type, command in COMPENSATION_CONFIRMATIONS.items():
            if applied[event_type] > max(1, sent[command]):
                twice.append(f"{saga['id']}: {event_type} applied {applied[event_type]} times for {sent[command]} sent")
    return Check(
        "no success applied twice", not twice, f"{len(twice)} saga(s) with a success applied twice", twice[:EXAMPLES]
    )


def failure_point(saga: Mapping[str, Any]) -> tuple[str, bool, list[str]] | None:
    """(failed step, by deadline or cancel, compensation commands sent after it) of a saga that undid, else None."""
    history = _history(saga)
    for position, entry in enumerate(history):
        if entry.get("kind") == "status" and entry.get("type") == "COMPENSATING":
            before = history[position - 1] if position else {}
            by_event = before.get("kind") == "event" and "fail" in str(before.get("type"))
            cancelled = saga["status"] == "CANCELLED" or str(saga.get("error") or "").startswith("cancelled")
            sent: list[str] = []
            for later in history[position + 1 :]:
                is_compensation = later.get("kind") == "command" and later.get("type") in COMPENSATION_COMMANDS
                if is_compensation and (not sent or sent[-1] != later.get("type")):
                    sent.append(str(later.get("type")))
            return str(saga.get("current_step")), cancelled or not by_event, sent
    return None


def compensations_as_the_table_says(sagas: Sequence[Mapping[str, Any]]) -> Check:
    wrong: list[str] = []
    checked = 0
    for saga in sagas:
        if saga["status"] not in ("FAILED", "CANCELLED", "COMPENSATION_FAILED"):
            continue
        point = failure_point(saga)
        if point is None:
            wrong.append(f"{saga['id']} {saga['status']} without a COMPENSATING status in its history")
            continue
        step, by_deadline, sent = point
        expected = CONTRACT_COMPENSATIONS.get((step, by_deadline))
        checked += 1
        if expected is None:
            wrong.append(f"{saga['id']}: failed at unknown step {step}")
            continue
        # Clean-ups of resources reported late may follow the table's compensations.
        if tuple(sent[: len(expected)]) != expected and not saga.get("cleanups"):
            how = "deadline or cancel" if by_deadline else "failure event"
            wrong.append(f"{saga['id']}: {step} by {how} sent {sent}, the table says {list(expected)}")
    return Check(
        "each failed saga's compensations as the contract's table says",
        not wrong,
        f"{checked:,} failed or cancelled sagas checked, {len(wrong)} wrong",
        wrong[:EXAMPLES],
    )


def every_poison_dead_lettered(markers: Iterable[str], dead_letters: Sequence[bytes]) -> Check:
    expected = list(markers)
    missing = [marker for marker in expected if not any(marker.encode() in value for value in dead_letters)]
    return Check(
        "every poison record dead-lettered",
        not missing,
        f"{len(expected) - len(missing)} of {len(expected)} in the dead-letter topic ({len(dead_letters)} records there)",
        missing[:EXAMPLES],
    )


def no_500(answered_500: Sequence[str]) -> Check:
    return Check(
        "no 500", not answered_500, f"{len(answered_500)} answer(s) 500 or other 5xx", list(answered_500[:EXAMPLES])
    )


def no_503_that_wrote(sagas: Sequence[Mapping[str, Any]], answered_503: Sequence[str]) -> Check:
    refused = set(answered_503)
    wrote = [f"{saga['id']} of {saga['customer_id']}" for saga in sagas if saga.get("customer_id") in refused]
    return Check(
        "no 503 that wrote",
        not wrote,
        f"{len(answered_503)} answer(s) 503, {len(wrote)} of them wrote a saga",
        wrote[:EXAMPLES],
    )


def one_saga_per_idempotency_key(sagas: Sequence[Mapping[str, Any]], keyed_orders: Iterable[int]) -> Check:
    """An order sent under one Idempotency-Key (customer_id `torture-<index>-k`) made one saga, however often it was sent."""
    expected = set(keyed_orders)
    made = Counter(str(saga["customer_id"]) for saga in sagas if str(saga.get("customer_id", "")).endswith("-k"))
    twice = [f"{customer}: {count} sagas" for customer, count in made.items() if count > 1]
    missing = [index for index in sorted(expected) if made[f"torture-{index}-k"] == 0]
    return Check(
        "one saga per idempotency key",
        not twice and not missing,
        f"{len(expected)} orders under a key, {len(twice)} with more than one saga, {len(missing)} with none",
        [*twice[:EXAMPLES], *[f"order {index}: no saga" for index in missing[:EXAMPLES]]],
    )
