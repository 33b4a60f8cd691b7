"""The four participant services, simulated: each command gets the contract's reply.

Like a well-behaved participant, the simulation answers a re-sent command (same
message_id) with the reply it gave the first time. Steps and compensations can be
made to fail (`fail_step`) or to stay silent (`silent_step`), to show each failure path.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

from saga.adapters.envelope import format_timestamp
from saga.domain.messages import JsonObject, new_message_id
from saga.domain.steps import ACTIONS, STEPS, UNDO

# Step and compensation names, as accepted by SAGA_SIMULATE_FAIL_STEP, and the command of each.
ACTION_COMMAND: dict[str, str] = {
    **{spec.step.value: spec.action.command for spec in STEPS},
    **{spec.compensation.value: spec.action.command for spec in UNDO.values()},
}
SIMULATABLE_ACTIONS = tuple(ACTION_COMMAND)
REMEMBERED_REPLIES = 100_000


def _commands(names: str | None) -> frozenset[str]:
    chosen = [name.strip() for name in (names or "").split(",") if name.strip()]
    for name in chosen:
        if name not in ACTION_COMMAND:
            raise ValueError(f"unknown step {name!r}; expected one of {', '.join(SIMULATABLE_ACTIONS)}")
    return frozenset(ACTION_COMMAND[name] for name in chosen)


def _reference(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


class SimulatedParticipants:
    def __init__(self, fail_step: str | None = None, silent_step: str | None = None) -> None:
        """`fail_step` and `silent_step` each name steps or compensations (`CREATE_ORDER`,
        `CANCEL_ORDER`, ...), several separated by commas. Raises ValueError for an unknown name."""
        self._failing = _commands(fail_step)
        self._silent = _commands(silent_step)
        self._replies: OrderedDict[str, JsonObject | None] = OrderedDict()
        self._lock = threading.Lock()

    def handle(self, command: JsonObject) -> JsonObject | None:
        """The event envelope answering a command envelope, or None for no answer."""
        message_id = str(command.get("message_id"))
        with self._lock:
            if message_id in self._replies:
                return self._replies[message_id]
        reply = self._reply(command)
        with self._lock:
            self._replies[message_id] = reply
            if len(self._replies) > REMEMBERED_REPLIES:
                self._replies.popitem(last=False)
        return reply

    def _reply(self, command: JsonObject) -> JsonObject | None:
        command_type = command.get("type")
        if not isinstance(command_type, str) or command_type not in ACTIONS or command_type in self._silent:
            return None
        action = ACTIONS[command_type]
        payload: JsonObject = dict(command.get("payload") or {})
        if command_type in self._failing:
            return self._event(action.failures[0], command, {"error": f"simulated failure of {command_type}"})
        return self._event(action.success, command, _success_payload(command_type, payload))

    @staticmethod
    def _event(event_type: str, command: JsonObject, payload: JsonObject) -> JsonObject:
        return {
            "type": event_type,
            "correlation_id": command.get("correlation_id"),
            "timestamp": format_timestamp(datetime.now(UTC)),
            "payload": payload,
            "message_id": new_message_id(),
        }


# What each step's success reply carries: what the saga keeps from it (`records`), as a
# well-behaved participant makes it up; compensations echo the resource they undid.
_MADE_UP: dict[str, Callable[[JsonObject], object]] = {
    "order_id": lambda payload: _reference("order"),
    "payment_info": lambda payload: {"stripeCustomerId": _reference("cus"), "paymentMethodId": _reference("pm")},
    "payment_id": lambda payload: _reference("pay"),
}


def _success_payload(command_type: str, payload: JsonObject) -> JsonObject:
    for step in STEPS:
        if step.action.command == command_type:
            reply: JsonObject = {name: payload.get(name) for name in step.expects}
            if step.records is not None:
                reply[step.records] = _MADE_UP[step.records](payload)
            return reply
    undo = next(spec for spec in UNDO.values() if spec.action.command == command_type)
    return {undo.undoes.id_field: payload.get(undo.undoes.id_field)}
