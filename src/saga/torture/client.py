"""The clients of a torture run: orders at a steady rate, some cancelled, every answer recorded.

Each attempt of an order carries its own `customer_id` (`torture-<index>-<attempt>`),
so a saga written by a request that was answered 503 can be found afterwards.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

from saga.torture.participants import plan_for

log = logging.getLogger(__name__)

ATTEMPTS = 12
REQUEST_TIMEOUT = 20.0


@dataclass
class ClientRecord:
    """What the clients saw."""

    answers: Counter[str] = field(default_factory=Counter)
    """`<route> <status>` (or `<route> connection error`) to how many times."""
    saga_ids: dict[int, str] = field(default_factory=dict)
    """Order index to the saga id it got."""
    answered_503: list[str] = field(default_factory=list)
    """customer_id of every attempt answered 503: none of them may have written a saga."""
    answered_504: dict[str, str] = field(default_factory=dict)
    """customer_id of every attempt answered 504, to the saga id the answer named."""
    answered_500: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    gave_up: list[int] = field(default_factory=list)
    cancels: int = 0

    def count(self, route: str, outcome: str) -> None:
        self.answers[f"{route} {outcome}"] += 1


def uses_idempotency_key(seed: int, index: int) -> bool:
    """Half the orders carry an Idempotency-Key, the same on every attempt."""
    return random.Random(f"{seed}:key:{index}").random() < 0.5


def order_body(index: int, attempt: int | str) -> dict[str, object]:
    """The order's body; `attempt` is in its customer_id (`k` for every attempt under one key)."""
    quantity = 1 + index % 3
    return {
        "customer_id": f"torture-{index}-{attempt}",
        "order_details": {
            "foodItems": [{"name": "Burger", "price": 12.99, "quantity": quantity}],
            "deliveryLocation": "North Campus",
        },
    }


class LoadClient:
    """POSTs `count` orders at `rate` per second to the API processes `targets()` names alive."""

    def __init__(self, seed: int, count: int, rate: float, targets: Callable[[], Sequence[str]]) -> None:
        self._seed = seed
        self._count = count
        self._rate = rate
        self._targets = targets
        self._lock = threading.Lock()
        self.record = ClientRecord()

    def run(self, stop: threading.Event) -> None:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=24, thread_name_prefix="torture-client") as pool:
            for index in range(self._count):
                wait = started + index / self._rate - time.monotonic()
                if wait > 0 and stop.wait(wait):
                    break
                pool.submit(self._guarded, index, stop)

    def _guarded(self, index: int, stop: threading.Event) -> None:
        try:
            self._order(index, stop)
        except Exception as error:  # a bug here must not hide the run's other findings
            log.exception("order %d: client error", index)
            with self._lock:
                self.record.unexpected.append(f"order {index}: client error {type(error).__name__}: {error}")

    def _target(self, turn: int) -> str | None:
        alive = list(self._targets())
        return alive[turn % len(alive)] if alive else None

    def _order(self, index: int, stop: threading.Event) -> None:
        saga_id: str | None = None
        for attempt in range(ATTEMPTS):
            if stop.is_set():
                return
            base = self._target(index + attempt)
            if base is None:
                stop.wait(0.5)
                continue
            keyed = uses_idempotency_key(self._seed, index)
            body = order_body(index, "k" if keyed else attempt)
            headers = {"Idempotency-Key": f"torture-{self._seed}-{index}"} if keyed else {}
            customer_id = str(body["customer_id"])
            try:
                response = requests.post(f"{base}/api/orders", json=body, headers=headers, timeout=REQUEST_TIMEOUT)
            except requests.RequestException as error:
                self._count_answer("POST /api/orders", "connection error")
                log.info("order %d attempt %d: %s", index, attempt, type(error).__name__)
                stop.wait(0.3)
                continue
            self._count_answer("POST /api/orders", str(response.status_code))
            if response.status_code == 202:
                saga_id = str(response.json()["saga_id"])
                break
            if response.status_code == 503:
                with self._lock:
                    if not keyed:  # under a key a retry answers the first saga: nothing to tell apart
                        self.record.answered_503.append(customer_id)
                stop.wait(float(response.headers.get("Retry-After", "1")))
                continue
            if response.status_code == 504:
                named = str(response.json().get("saga_id"))
                with self._lock:
                    self.record.answered_504[customer_id] = named
                if keyed:
                    continue  # the contract: repeat it with the same key, which finds the saga if it exists
                # The contract: the saga may exist; GET it before trying again.
                if self._exists(named, stop):
                    saga_id = named
                    break
                continue
            with self._lock:
                if response.status_code >= 500:
                    self.record.answered_500.append(f"POST /api/orders {response.status_code}: {response.text[:300]}")
                else:
                    self.record.unexpected.append(f"POST /api/orders {response.status_code}: {response.text[:300]}")
            stop.wait(0.5)
        if saga_id is None:
            with self._lock:
                self.record.gave_up.append(index)
            return
        with self._lock:
            self.record.saga_ids[index] = saga_id
        plan = plan_for(self._seed, index)
        if plan.cancel_after is not None and not stop.wait(plan.cancel_after):
            self._cancel(index, saga_id, stop)

    def _exists(self, saga_id: str, stop: threading.Event) -> bool:
        deadline = time.monotonic() + 30
        turn = 0
        while time.monotonic() < deadline and not stop.is_set():
            base = self._target(turn)
            turn += 1
            if base is not None:
                try:
                    response = requests.get(f"{base}/api/sagas/{saga_id}", timeout=REQUEST_TIMEOUT)
                    self._count_answer("GET /api/sagas/{id}", str(response.status_code))
                    if response.status_code == 200:
                        return True
                    if response.status_code == 404:
                        return False
                    if response.status_code >= 500 and response.status_code != 503:
                        with self._lock:
                            self.record.answered_500.append(f"GET /api/sagas {response.status_code}")
                except requests.RequestException:
                    self._count_answer("GET /api/sagas/{id}", "connection error")
            stop.wait(0.5)
        return False

    def _cancel(self, index: int, saga_id: str, stop: threading.Event) -> None:
        with self._lock:
            self.record.cancels += 1
        for turn in range(ATTEMPTS):
            base = self._target(index + turn)
            if base is None:
                stop.wait(0.5)
                continue
            try:
                response = requests.post(
                    f"{base}/api/sagas/{saga_id}/cancel", json={"reason": "torture"}, timeout=REQUEST_TIMEOUT
                )
            except requests.RequestException:
                self._count_answer("POST /api/sagas/{id}/cancel", "connection error")
                stop.wait(0.3)
                continue
            self._count_answer("POST /api/sagas/{id}/cancel", str(response.status_code))
            if response.status_code in (202, 409):
                return
            if response.status_code >= 500 and response.status_code not in (503, 504):
                with self._lock:
                    self.record.answered_500.append(f"cancel {response.status_code}: {response.text[:300]}")
                return
            if response.status_code < 500:
                with self._lock:
                    self.record.unexpected.append(f"cancel {response.status_code}: {response.text[:300]}")
                return
            stop.wait(1.0)

    def _count_answer(self, route: str, outcome: str) -> None:
        with self._lock:
            self.record.count(route, outcome)
