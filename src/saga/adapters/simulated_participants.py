"""The four participant services, simulated: each command gets the contract's reply.

Like a well-behaved participant, the simulation answers a re-sent command (same
message_id) with the reply it gave the first time. One step or compensation can be
made to fail (`fail_step`) or to stay silent (`silent_step`), to show each failure path.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from datetime import UTC, datetime

from saga.adapters.envelope import format_timestamp
from saga.domain.messages import COMMANDS, JsonObject, new_message_id
from saga.domain.saga import COMPENSATION_COMMAND, STEP_COMMAND

# Step and compensation names, as accepted by SAGA_SIMULATE_FAIL_STEP.
ACTION_COMMAND: dict[str, str] = {
    **{step.value: command for step, command in STEP_COMMAND.items()},
    **{compensation.value: command for compensation, command in COMPENSATION_COMMAND.items()},
}
SIMULATABLE_ACTIONS = tuple(ACTION_COMMAND)
REMEMBERED_REPLIES = 100_000


def _reference(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


class SimulatedParticipants:
    def __init__(self, fail_step: str | None = None, silent_step: str | None = None) -> None:
        for name in (fail_step, silent_step):
            if name is not None and name not in ACTION_COMMAND:
                raise ValueError(f"unknown step {name!r}; expected one of {', '.join(SIMULATABLE_ACTIONS)}")
        self._failing = ACTION_COMMAND[fail_step] if fail_step else None
        self._silent = ACTION_COMMAND[silent_step] if silent_step else None
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
        if not isinstance(command_type, str) or command_type not in COMMANDS or command_type == self._silent:
            return None
        reply = COMMANDS[command_type].reply
        payload: JsonObject = dict(command.get("payload") or {})
        if command_type == self._failing:
            return self._event(reply.failure, command, {"error": f"simulated failure of {command_type}"})
        return self._event(reply.success, command, self._success_payload(command_type, payload))

    @staticmethod
    def _success_payload(command_type: str, payload: JsonObject) -> JsonObject:
        if command_type == "create_order":
            return {"order_id": _reference("order"), "status": "pendingPayment"}
        if command_type == "get_payment_info":
            return {"payment_info": {"payment_method_id": _reference("pm"), "card_last4": "4242"}}
        if command_type == "authorize_payment":
            return {"payment_id": _reference("pay"), "amount_cents": payload.get("amount_cents")}
        if command_type == "update_order_status":
            return {"order_id": payload.get("order_id"), "status": payload.get("status")}
        if command_type == "start_order_timer":
            return {"timer_id": _reference("timer"), "timeout_at": payload.get("timeout_at")}
        if command_type == "cancel_order":
            return {"order_id": payload.get("order_id")}
        return {"payment_id": payload.get("payment_id")}

    @staticmethod
    def _event(event_type: str, command: JsonObject, payload: JsonObject) -> JsonObject:
        return {
            "type": event_type,
            "correlation_id": command.get("correlation_id"),
            "timestamp": format_timestamp(datetime.now(UTC)),
            "payload": payload,
            "message_id": new_message_id(),
        }
