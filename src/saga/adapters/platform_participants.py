"""The platform's real order, user, payment and timer services, simulated as they behave.

docs/contract.md, "The platform's services", records how the deployed services answer; this profile does the
same, so the orchestrator can be tried against them without them:

- Envelopes carry `type`, `correlation_id`, `timestamp`, `payload` and `source`,
  never a `message_id`. Order and payment timestamps are naive UTC, the user
  service's end in `+00:00`. Over Kafka their replies carry no record key.
- A command's `message_id` is ignored: a re-sent `create_order` makes a second
  order (a new `order_id`), a re-sent `authorize_payment` a second payment.
- Order service: `create_order` is silent on any invalid field (food total or
  delivery fee over 999.99, `customer_id` over 36 characters, no
  `deliveryLocation`); `update_order_status` is silent for an unknown order or
  status name and, when made to fail, answers `order.status_update_failed` with
  the whole SQL error text; `cancel_order` is silent for a null or unknown
  `order_id` and confirms an order already final.
- User service: `user.payment_info_failed` with `"User not found"` for a user id
  starting `unknown_`, `"Default payment method not set for user"` for one starting
  `nocard_`; silent without `user_id`. A user id starting `declined_` gets a card
  the payment service declines.
- Payment service: reads only the nested `customer` / `order` objects and answers
  `payment.failed` `{error: CODE, message}` (`INVALID_PAYLOAD`, `INVALID_AMOUNT`,
  `STRIPE_CARD_ERROR`, `STRIPE_API_ERROR`); `revert_payment` with a null
  `payment_id` is `INVALID_PAYLOAD`, an unknown one `not_found`.
- Timer: an HTTP API, `POST /StartTimer` `{"OrderId", "CustomerId", "RunnerId"}`,
  answered 200; no event follows.

Knobs make a chosen service (or one command type) slow past a deadline, silent for
good, answer twice (it processes the command twice, as a redelivery would) or fail,
each for every command or at a given rate. The orders and payments it holds form
its ledger (`saga.ports.ledger`), which `saga audit` compares with the sagas.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

import requests
import requests.adapters

from saga.domain.messages import JsonObject, Participant
from saga.ports.ledger import LedgerRow, ResourceKind, ResourceStatus

SERVICE_COMMANDS: Mapping[Participant, tuple[str, ...]] = {
    Participant.ORDER: ("create_order", "update_order_status", "cancel_order"),
    Participant.USER: ("get_payment_info",),
    Participant.PAYMENT: ("authorize_payment", "revert_payment"),
    Participant.TIMER: ("StartTimer",),
}
"""What each service takes: Kafka command types, and the timer's one HTTP endpoint."""
COMMAND_SERVICE = {command: service for service, commands in SERVICE_COMMANDS.items() for command in commands}
KNOB_TARGETS = (*(participant.value for participant in Participant), *COMMAND_SERVICE)

MAX_MONEY = Decimal("999.99")
"""The order service's columns are numeric(5,2)."""
MAX_CUSTOMER_ID_LENGTH = 36
MIN_AMOUNT_CENTS = 50
ORDER_STATUSES = ("PENDING", "CREATED", "ACCEPTED", "PREPARING", "READY", "DELIVERING", "DELIVERED", "CANCELLED")
UNKNOWN_USER_PREFIX = "unknown_"
NO_CARD_PREFIX = "nocard_"
DECLINED_USER_PREFIX = "declined_"
DECLINED_CARD = "pm_card_chargeDeclined"


def _naive_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def _aware_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def status_update_sql_error(order_id: str, status: str, now: datetime) -> str:
    """The text the order service sends in `order.status_update_failed`: SQLAlchemy's whole
    error, statement and parameters included, over several lines."""
    stamp = now.astimezone(UTC).replace(tzinfo=None)
    return (
        "(psycopg2.errors.SerializationFailure) could not serialize access due to concurrent update\n"
        'CONTEXT:  while updating tuple (0,17) in relation "orders"\n'
        "\n"
        "[SQL: UPDATE orders SET status=%(status)s::orderstatus, updated_at=%(updated_at)s, "
        "version_id=%(version_id)s WHERE orders.id = %(orders_id)s::UUID AND orders.version_id = "
        "%(orders_version_id)s RETURNING orders.customer_id, orders.total_amount, orders.delivery_fee, "
        "orders.delivery_location, orders.store_location, orders.created_at]\n"
        f"[parameters: {{'status': '{status}', 'updated_at': datetime.datetime({stamp.year}, {stamp.month}, "
        f"{stamp.day}, {stamp.hour}, {stamp.minute}, {stamp.second}, {stamp.microsecond}), 'version_id': 2, "
        f"'orders_id': UUID('{order_id}'), 'orders_version_id': 1}}]\n"
        "(Background on this error at: https://sqlalche.me/e/20/e3q8)"
    )


@dataclass(frozen=True)
class Knob:
    """Targets (a service, "order", or a command type, "create_order") and how often it applies."""

    targets: frozenset[str] = frozenset()
    rate: float = 1.0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.targets) - set(KNOB_TARGETS))
        if unknown:
            raise ValueError(
                f"unknown service or command {', '.join(unknown)}; expected one of {', '.join(KNOB_TARGETS)}"
            )
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"a knob's rate must be between 0 and 1, got {self.rate}")

    @classmethod
    def of(cls, *targets: str, rate: float = 1.0) -> Knob:
        return cls(frozenset(targets), rate)

    def covers(self, service: Participant, command: str) -> bool:
        return service.value in self.targets or command in self.targets


@dataclass(frozen=True)
class Knobs:
    """How the simulated services misbehave on purpose."""

    slow: Knob = field(default_factory=Knob)
    """Replies (and the timer's answer) come `slow_by` late: the work is done at once, the reply waits."""
    slow_by: timedelta = timedelta(seconds=60)
    silent: Knob = field(default_factory=Knob)
    """The service takes the command and does nothing: no effect, no reply (the timer never answers)."""
    twice: Knob = field(default_factory=Knob)
    """The service processes the command twice, as after a redelivery: two orders, two payments, two replies."""
    fail: Knob = field(default_factory=Knob)
    """The service's own failure: a database error in the order service (silent for `create_order` and
    `cancel_order`, the SQL text for `update_order_status`), "User not found", `STRIPE_API_ERROR` /
    `stripe_error`, a 400 from the timer."""
    seed: int | None = None
    user_skips_earlier: bool = True
    """The user service joins its consumer group at the latest offset: a command stamped before
    the simulation started is never seen (its re-send is)."""

    def __post_init__(self) -> None:
        if self.slow_by < timedelta(0):
            raise ValueError("slow_by must not be negative")


@dataclass(frozen=True)
class TimerAnswer:
    """The timer API's answer to one request: its status and body, after `delay` seconds;
    `delay` None means it never answers."""

    status: int
    body: JsonObject
    delay: float | None = 0.0


@dataclass
class _Order:
    id: str
    saga_id: str
    customer_id: str
    status: str


@dataclass
class _Payment:
    id: str
    saga_id: str
    order_id: str
    status: ResourceStatus


class Ledger:
    """The orders and payments the simulated services hold, one row each; thread-safe.

    With a `path`, `flush()` writes them as JSON Lines (one row per resource, the
    ledger's keys), replacing the file whole so a reader never sees half of it; a file
    already there is read first, as a service restarted on its database.
    """

    def __init__(self, path: Path | None = None) -> None:
        self._rows: dict[tuple[ResourceKind, str], LedgerRow] = {}
        self._path = path
        self._dirty = False
        self._lock = threading.Lock()
        if path is not None and path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = LedgerRow.parse(json.loads(line))
                    self._rows[(row.kind, row.id)] = row

    def record(self, row: LedgerRow) -> None:
        with self._lock:
            self._rows[(row.kind, row.id)] = row
            self._dirty = True

    def rows(self) -> list[LedgerRow]:
        """Every resource, in the order they were created."""
        with self._lock:
            return list(self._rows.values())

    def of_saga(self, saga_id: str) -> list[LedgerRow]:
        return [row for row in self.rows() if row.saga_id == saga_id]

    def jsonl(self) -> str:
        return "".join(json.dumps(row.to_dict(), allow_nan=False) + "\n" for row in self.rows())

    def flush(self) -> None:
        """Writes the file if anything changed since the last write (no-op without a path)."""
        if self._path is None:
            return
        with self._lock:
            if not self._dirty:
                return
            self._dirty = False
            text = "".join(json.dumps(row.to_dict(), allow_nan=False) + "\n" for row in self._rows.values())
            scratch = self._path.with_name(self._path.name + ".tmp")
            scratch.write_text(text, encoding="utf-8")
            scratch.replace(self._path)


class PlatformParticipants:
    """The four platform services in one object. `handle` takes a command envelope (from
    Kafka or `/commands`) and returns the reply envelopes due now; `release(now)` returns
    the replies held back by the slow knob whose time has come; `start_timer` is the
    timer's HTTP API. Thread-safe."""

    keyed_replies = False
    """The platform's services publish without a record key."""
    kafka_participants = (Participant.ORDER, Participant.USER, Participant.PAYMENT)
    """No service reads timer_commands: the timer is an HTTP API."""

    def __init__(
        self,
        knobs: Knobs | None = None,
        clock: Callable[[], datetime] | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self.knobs = knobs or Knobs()
        self.ledger = ledger or Ledger()
        self._clock = clock or (lambda: datetime.now(UTC))
        self.started_at = self._clock()
        self._random = random.Random(self.knobs.seed)
        self._orders: dict[str, _Order] = {}
        self._payments: dict[str, _Payment] = {}
        self._held: list[tuple[datetime, int, JsonObject]] = []
        self._held_count = 0
        for row in self.ledger.rows():  # what a restarted service finds in its database
            if row.kind is ResourceKind.ORDER:
                self._orders[row.id] = _Order(row.id, row.saga_id, "", row.status.value)
            else:
                self._payments[row.id] = _Payment(row.id, row.saga_id, row.order_id, row.status)
        self.timers_started: list[JsonObject] = []
        """Bodies of the timer requests answered 200, oldest first."""
        self._lock = threading.RLock()

    # ------------------------------------------------------------ dispatch

    def handle(self, command: JsonObject) -> list[JsonObject]:
        """The reply envelopes to publish now for one command envelope (none when silent or held)."""
        command_type = command.get("type")
        if not isinstance(command_type, str) or command_type not in COMMAND_SERVICE or command_type == "StartTimer":
            return []
        service = COMMAND_SERVICE[command_type]
        if service is Participant.USER and self.knobs.user_skips_earlier and self._before_start(command):
            return []
        with self._lock:
            if self._applies(self.knobs.silent, service, command_type):
                return []
            failing = self._applies(self.knobs.fail, service, command_type)
            copies = 2 if self._applies(self.knobs.twice, service, command_type) else 1
            replies = [
                reply for _ in range(copies) if (reply := self._process(command_type, command, failing)) is not None
            ]
            if replies and self._applies(self.knobs.slow, service, command_type):
                due = self._clock() + self.knobs.slow_by
                for reply in replies:
                    self._held_count += 1
                    self._held.append((due, self._held_count, reply))
                return []
        return replies

    def _before_start(self, command: JsonObject) -> bool:
        stamp = command.get("timestamp")
        try:
            moment = datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
        except ValueError:
            return False
        if moment is None:
            return False
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) < self.started_at

    def release(self, now: datetime | None = None) -> list[JsonObject]:
        """Held replies due by `now` (default: the clock), earliest first."""
        moment = now or self._clock()
        with self._lock:
            due = sorted(item for item in self._held if item[0] <= moment)
            self._held = [item for item in self._held if item[0] > moment]
        return [reply for _, _, reply in due]

    def held(self) -> int:
        """Replies still held back by the slow knob."""
        with self._lock:
            return len(self._held)

    def next_release(self) -> datetime | None:
        with self._lock:
            return min((item[0] for item in self._held), default=None)

    def shuffled(self, items: Sequence[JsonObject]) -> list[JsonObject]:
        """`items` in a random order: the services run each command in its own thread."""
        result = list(items)
        with self._lock:
            self._random.shuffle(result)
        return result

    def _applies(self, knob: Knob, service: Participant, command_type: str) -> bool:
        return knob.covers(service, command_type) and (knob.rate >= 1.0 or self._random.random() < knob.rate)

    def _process(self, command_type: str, command: JsonObject, failing: bool) -> JsonObject | None:
        raw = command.get("payload")
        payload: JsonObject = raw if isinstance(raw, dict) else {}
        correlation_id = command.get("correlation_id")
        saga_id = correlation_id if isinstance(correlation_id, str) else ""
        handlers: dict[str, Callable[[JsonObject, str, bool], JsonObject | None]] = {
            "create_order": self._create_order,
            "update_order_status": self._update_order_status,
            "cancel_order": self._cancel_order,
            "get_payment_info": self._get_payment_info,
            "authorize_payment": self._authorize_payment,
            "revert_payment": self._revert_payment,
        }
        return handlers[command_type](payload, saga_id, failing)

    def _event(self, service: Participant, event_type: str, saga_id: str, payload: JsonObject) -> JsonObject:
        now = self._clock()
        return {
            "type": event_type,
            "correlation_id": saga_id,
            "timestamp": _aware_utc(now) if service is Participant.USER else _naive_utc(now),
            "payload": payload,
            "source": f"{service.value}-service",
        }

    # -------------------------------------------------------------- orders

    def _create_order(self, payload: JsonObject, saga_id: str, failing: bool) -> JsonObject | None:
        customer_id = payload.get("customer_id")
        details = payload.get("order_details")
        saga = payload.get("saga_id")
        if failing or not isinstance(customer_id, str) or not customer_id or len(customer_id) > MAX_CUSTOMER_ID_LENGTH:
            return None
        if not isinstance(details, dict) or not isinstance(saga, str) or not saga:
            return None
        if not _order_row_fits(details):
            return None
        order = _Order(str(uuid.uuid4()), saga, customer_id, "PENDING")
        self._orders[order.id] = order
        self._record_order(order)
        return self._event(
            Participant.ORDER,
            "order.created",
            saga_id,
            {"order_id": order.id, "customer_id": customer_id, "status": "PENDING", "saga_id": saga},
        )

    def _update_order_status(self, payload: JsonObject, saga_id: str, failing: bool) -> JsonObject | None:
        order = self._orders.get(str(payload.get("order_id")))
        status = payload.get("status")
        if order is None or status not in ORDER_STATUSES:
            return None
        if failing:
            return self._event(
                Participant.ORDER,
                "order.status_update_failed",
                saga_id,
                {"order_id": order.id, "error": status_update_sql_error(order.id, str(status), self._clock())},
            )
        order.status = str(status)
        self._record_order(order)
        return self._event(
            Participant.ORDER,
            "order.status_updated",
            saga_id,
            {"order_id": order.id, "status": order.status, "saga_id": order.saga_id},
        )

    def _cancel_order(self, payload: JsonObject, saga_id: str, failing: bool) -> JsonObject | None:
        order = self._orders.get(str(payload.get("order_id")))
        if order is None or failing:
            return None
        order.status = "CANCELLED"
        self._record_order(order)
        return self._event(
            Participant.ORDER, "order.cancelled", saga_id, {"order_id": order.id, "reason": payload.get("reason")}
        )

    def _record_order(self, order: _Order) -> None:
        status = {"PENDING": ResourceStatus.PENDING, "CANCELLED": ResourceStatus.CANCELLED}.get(
            order.status, ResourceStatus.CREATED
        )
        self.ledger.record(LedgerRow(order.saga_id, ResourceKind.ORDER, order.id, status, order.id))

    # ---------------------------------------------------------------- users

    def _get_payment_info(self, payload: JsonObject, saga_id: str, failing: bool) -> JsonObject | None:
        user_id = payload.get("user_id")
        if not isinstance(user_id, str) or not user_id:
            return None
        if failing or user_id.startswith(UNKNOWN_USER_PREFIX):
            return self._event(Participant.USER, "user.payment_info_failed", saga_id, {"error": "User not found"})
        if user_id.startswith(NO_CARD_PREFIX):
            return self._event(
                Participant.USER,
                "user.payment_info_failed",
                saga_id,
                {"error": "Default payment method not set for user"},
            )
        method = DECLINED_CARD if user_id.startswith(DECLINED_USER_PREFIX) else f"pm_{uuid.uuid4().hex[:24]}"
        info = {
            "stripeCustomerId": f"cus_{uuid.uuid5(uuid.NAMESPACE_URL, user_id).hex[:14]}",
            "paymentMethodId": method,
        }
        return self._event(Participant.USER, "user.payment_info_retrieved", saga_id, {"payment_info": info})

    # ------------------------------------------------------------- payments

    def _payment_failed(self, saga_id: str, code: str, message: str) -> JsonObject:
        return self._event(Participant.PAYMENT, "payment.failed", saga_id, {"error": code, "message": message})

    def _authorize_payment(self, payload: JsonObject, saga_id: str, failing: bool) -> JsonObject | None:
        customer = payload.get("customer")
        order = payload.get("order")
        card = customer.get("userStripeCard") if isinstance(customer, dict) else None
        nested = (
            isinstance(customer, dict)
            and isinstance(order, dict)
            and isinstance(card, dict)
            and all(isinstance(customer.get(name), str) for name in ("clerkUserId", "stripeCustomerId"))
            and isinstance(card.get("payment_method_id"), str)
            and "amount" in order
        )
        if not nested or not isinstance(order, dict) or not isinstance(card, dict):
            return self._payment_failed(
                saga_id,
                "INVALID_PAYLOAD",
                "customer.clerkUserId, customer.stripeCustomerId, customer.userStripeCard.payment_method_id "
                "and order.amount are required",
            )
        amount = order.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < MIN_AMOUNT_CENTS:
            return self._payment_failed(
                saga_id, "INVALID_AMOUNT", f"order.amount must be an integer of at least {MIN_AMOUNT_CENTS} cents"
            )
        if card.get("payment_method_id") == DECLINED_CARD:
            return self._payment_failed(saga_id, "STRIPE_CARD_ERROR", "Your card was declined.")
        if failing:
            return self._payment_failed(saga_id, "STRIPE_API_ERROR", "An error occurred with our connection to Stripe.")
        order_id = payload.get("order_id")
        payment = _Payment(
            f"pi_{uuid.uuid4().hex[:24]}",
            saga_id,
            "" if order_id is None else str(order_id),
            ResourceStatus.AUTHORIZED,
        )
        self._payments[payment.id] = payment
        self._record_payment(payment)
        return self._event(
            Participant.PAYMENT,
            "payment.authorized",
            saga_id,
            {
                "payment_id": payment.id,
                "order_id": payment.order_id,
                "status": "requires_capture",
                "amount": amount,
                "currency": "usd",
                "client_secret": f"{payment.id}_secret_{uuid.uuid4().hex[:16]}",
            },
        )

    def _revert_payment(self, payload: JsonObject, saga_id: str, failing: bool) -> JsonObject | None:
        payment_id = payload.get("payment_id")
        if payment_id is None:
            return self._payment_failed(saga_id, "INVALID_PAYLOAD", "payment_id is required")
        payment = self._payments.get(str(payment_id))
        if payment is None:
            return self._payment_failed(saga_id, "not_found", f"No payment found with id {payment_id}")
        if failing:
            return self._payment_failed(
                saga_id, "stripe_error", "Request req_sim: the PaymentIntent could not be canceled"
            )
        payment.status = ResourceStatus.REVERTED
        self._record_payment(payment)
        return self._event(
            Participant.PAYMENT,
            "payment.released",
            saga_id,
            {"payment_id": payment.id, "message": "Payment authorization released"},
        )

    def _record_payment(self, payment: _Payment) -> None:
        self.ledger.record(
            LedgerRow(payment.saga_id, ResourceKind.PAYMENT, payment.id, payment.status, payment.order_id)
        )

    # ---------------------------------------------------------------- timer

    def start_timer(self, body: object) -> TimerAnswer:
        """`POST /StartTimer`: 200 once the timer runs, 400 for a body without `OrderId`."""
        service = Participant.TIMER
        with self._lock:
            if self._applies(self.knobs.silent, service, "StartTimer"):
                return TimerAnswer(504, {}, delay=None)
            delay = self.knobs.slow_by.total_seconds() if self._applies(self.knobs.slow, service, "StartTimer") else 0.0
            if not isinstance(body, dict) or not body.get("OrderId"):
                return TimerAnswer(400, {"error": "OrderId is required"}, delay)
            if self._applies(self.knobs.fail, service, "StartTimer"):
                return TimerAnswer(400, {"error": "Runner assignment is closed for this order"}, delay)
            copies = 2 if self._applies(self.knobs.twice, service, "StartTimer") else 1
            self.timers_started.extend([dict(body)] * copies)
        return TimerAnswer(200, {"message": "Timer started", "orderId": body.get("OrderId")}, delay)

    # ----------------------------------------------------------- inspection

    def orders_of(self, saga_id: str) -> list[LedgerRow]:
        return [row for row in self.ledger.of_saga(saga_id) if row.kind is ResourceKind.ORDER]

    def payments_of(self, saga_id: str) -> list[LedgerRow]:
        return [row for row in self.ledger.of_saga(saga_id) if row.kind is ResourceKind.PAYMENT]


def _money(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _order_row_fits(details: JsonObject) -> bool:
    """Whether the order service's table takes the order: numeric(5,2) money, a delivery location."""
    items = details.get("foodItems")
    if not isinstance(items, list) or not details.get("deliveryLocation"):
        return False
    total = Decimal(0)
    for item in items:
        if not isinstance(item, dict):
            return False
        price, quantity = _money(item.get("price")), _money(item.get("quantity"))
        if price is None or quantity is None:
            return False
        total += price * quantity
    fee = _money(details.get("deliveryFee", 0))
    return fee is not None and total <= MAX_MONEY and fee <= MAX_MONEY


def knob_from_targets(targets: Iterable[str] | None, rate: float = 1.0) -> Knob:
    """A knob from command-line style target names (blank ones ignored)."""
    return Knob(frozenset(target.strip() for target in targets or () if target.strip()), rate)


def platform_handlers(simulation: PlatformParticipants) -> dict[Participant, Callable[[JsonObject], list[JsonObject]]]:
    """The Kafka services' command handlers (the timer is reached over its HTTP API instead)."""
    return {
        participant: simulation.handle for participant in (Participant.ORDER, Participant.USER, Participant.PAYMENT)
    }


class InProcessTimerApi(requests.adapters.BaseAdapter):
    """Serves the simulated timer API inside the process, for a `requests.Session`: the
    timer-api transport runs unchanged against it with no server (the in-memory harness).
    An answer slower than the request's read timeout, or none at all, is a ReadTimeout,
    as over a socket (the timer may have started all the same)."""

    def __init__(self, simulation: PlatformParticipants) -> None:
        super().__init__()
        self._simulation = simulation

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        if request.method != "POST" or not (request.path_url or "").endswith("/StartTimer"):
            return _response(request, 404, {"error": "not found"})
        try:
            body = json.loads(request.body or b"")
        except ValueError:
            return _response(request, 400, {"error": "body must be JSON"})
        answer = self._simulation.start_timer(body)
        read_timeout = timeout[1] if isinstance(timeout, tuple) else timeout
        if answer.delay is None or (read_timeout is not None and answer.delay > read_timeout):
            raise requests.ReadTimeout(f"the timer API did not answer within {read_timeout}s", request=request)
        return _response(request, answer.status, answer.body)

    def close(self) -> None:
        pass


def _response(request: requests.PreparedRequest, status: int, body: JsonObject) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body, allow_nan=False).encode()
    response._content_consumed = True  # type: ignore[attr-defined]  # iter_content then yields the body held
    response.headers["Content-Type"] = "application/json"
    response.url = request.url or ""
    response.request = request
    return response


def in_process_timer_session(simulation: PlatformParticipants, base_url: str) -> requests.Session:
    """A session whose requests to `base_url` reach `simulation.start_timer` in this process."""
    session = requests.Session()
    session.mount(base_url, InProcessTimerApi(simulation))
    return session
