"""The benchmark's client side: keep-alive HTTP to the orchestrator, load, and reading results back.

The client uses http.client with one persistent connection per thread: it costs
the machine much less CPU per request than requests, so more of the two cores are
left to what is measured.
"""

from __future__ import annotations

import http.client
import itertools
import json
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import psycopg2
from prometheus_client.parser import text_string_to_metric_families

from saga.service_layer.metrics import flat_counters

FINAL = ("COMPLETED", "FAILED", "CANCELLED", "COMPENSATION_FAILED")
STEP_COMMANDS = ["create_order", "get_payment_info", "authorize_payment", "update_order_status", "start_order_timer"]
SUCCESS_EVENTS = [
    "order.created",
    "user.payment_info_retrieved",
    "payment.authorized",
    "order.status_updated",
    "timer.started",
]


def order(customer_id: str) -> bytes:
    """The seed's example order, for `customer_id` (which tags a benchmark phase's sagas)."""
    return json.dumps(
        {
            "customer_id": customer_id,
            "order_details": {
                "foodItems": [{"name": "Burger", "price": 12.99, "quantity": 1}],
                "deliveryLocation": "North Campus",
            },
        }
    ).encode()


# ---------------------------------------------------------------- stats


def percentiles(values: Sequence[float], *qs: int) -> list[float | None]:
    """The q-th percentiles (q in 1..99) by linear interpolation between closest ranks
    (`statistics.quantiles`, inclusive method); None for each when there are no values."""
    if not values:
        return [None for _ in qs]
    if len(values) == 1:
        return [values[0] for _ in qs]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return [cuts[q - 1] for q in qs]


def summary_ms(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """count, median, p95, p99, max and mean of durations given in seconds, in milliseconds."""
    ms = [s * 1000 for s in seconds]
    median, p95, p99 = percentiles(ms, 50, 95, 99)
    return {
        "count": len(ms),
        "median": median,
        "p95": p95,
        "p99": p99,
        "max": max(ms) if ms else None,
        "mean": sum(ms) / len(ms) if ms else None,
    }


# ----------------------------------------------------------------- HTTP


class Api:
    """A tiny keep-alive HTTP client; one connection per thread."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        self.base_url = base_url.rstrip("/")
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._timeout = timeout
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._local.connection = connection
        return connection

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
        self._local.connection = None

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, data
            except (
                http.client.RemoteDisconnected,
                ConnectionResetError,
                BrokenPipeError,
                http.client.CannotSendRequest,
            ):
                # A keep-alive connection the server closed while idle: reconnect once.
                self._drop()
                if attempt == 2:
                    raise
            except Exception:
                self._drop()
                raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        status, _, data = self.request(method, path, body)
        return status, json.loads(data) if data else None

    def start(self, customer_id: str) -> str:
        status, body = self.json("POST", "/api/orders", order(customer_id))
        if status != 202:
            raise RuntimeError(f"POST /api/orders answered {status}: {body}")
        return str(body["saga_id"])

    def saga(self, saga_id: str) -> dict[str, Any]:
        status, body = self.json("GET", f"/api/sagas/{saga_id}")
        if status != 200:
            raise RuntimeError(f"GET /api/sagas/{saga_id} answered {status}: {body}")
        return dict(body)

    def counters(self) -> dict[str, int]:
        """The Prometheus counters of /metrics under flat names (`commands_sent`, `events_applied`, ...)."""
        status, _, data = self.request("GET", "/metrics")
        return flat_counters(text_string_to_metric_families(data.decode())) if status == 200 else {}

    def close(self) -> None:
        self._drop()


def parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class OneSaga:
    client_seconds: float
    server_seconds: float | None
    status: str
    polls: int


def run_one(api: Api, customer_id: str, poll_interval: float, timeout: float = 30.0) -> OneSaga:
    """POSTs one order and polls GET /api/sagas/{id} until the saga is final: the client's latency."""
    started = time.perf_counter()
    saga_id = api.start(customer_id)
    polls = 0
    deadline = started + timeout
    saga: dict[str, Any] = {}
    while time.perf_counter() < deadline:
        saga = api.saga(saga_id)
        polls += 1
        if saga["status"] in FINAL:
            break
        if poll_interval:
            time.sleep(poll_interval)
    elapsed = time.perf_counter() - started
    created, completed = parse_time(saga.get("created_at")), parse_time(saga.get("completed_at"))
    server = (completed - created).total_seconds() if created and completed else None
    return OneSaga(
        elapsed, server, str(saga.get("status", "TIMEOUT")) if saga.get("status") in FINAL else "TIMEOUT", polls
    )


def run_one_unobserved(api: Api, db: SagaDb, customer_id: str, poll_interval: float, timeout: float = 30.0) -> OneSaga:
    """POSTs one order and watches its row in the database (not the API) until final.

    The orchestrator serves no GETs meanwhile, so this shows what polling the API costs the saga.
    """
    started = time.perf_counter()
    saga_id = api.start(customer_id)
    deadline = started + timeout
    polls = 0
    row = None
    while time.perf_counter() < deadline:
        row = db.saga_times(saga_id)
        polls += 1
        if row is not None and row[0] in FINAL:
            break
        time.sleep(poll_interval)
    elapsed = time.perf_counter() - started
    if row is None or row[0] not in FINAL:
        return OneSaga(elapsed, None, "TIMEOUT", polls)
    server = (row[2] - row[1]).total_seconds() if row[2] else None
    return OneSaga(elapsed, server, row[0], polls)


@dataclass
class PostRun:
    ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    post_seconds: list[float] = field(default_factory=list)


def post_many(
    api: Api,
    count: int,
    threads: int,
    customer_id: str,
    on_progress: Callable[[int], None] | None = None,
    interval: float | None = None,
) -> PostRun:
    """POSTs `count` orders from `threads` threads: as fast as the API takes them, or one every `interval` seconds."""
    run = PostRun()
    counter = itertools.count()
    lock = threading.Lock()
    run.started = time.perf_counter()

    def worker() -> None:
        mine: list[str] = []
        timings: list[float] = []
        errors: list[str] = []
        while (index := next(counter)) < count:
            if interval is not None:
                pause = run.started + index * interval - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
            began = time.perf_counter()
            try:
                mine.append(api.start(customer_id))
            except Exception as error:  # counted, not fatal: the figure says how many failed
                errors.append(f"{type(error).__name__}: {error}"[:300])
            timings.append(time.perf_counter() - began)
            if on_progress is not None and index % 500 == 0:
                on_progress(index)
        with lock:
            run.ids.extend(mine)
            run.post_seconds.extend(timings)
            run.errors.extend(errors)
        api.close()

    pool = [threading.Thread(target=worker, name=f"bench-post-{i}", daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    run.finished = time.perf_counter()
    return run


# ------------------------------------------------------- reading results


@dataclass
class SagaRow:
    id: str
    status: str
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    history: list[dict[str, Any]] | None = None


HISTORY_FIELDS = ("at", "kind", "type", "message_id", "detail")


class SagaDb:
    """Reads the orchestrator's tables behind its back: counts while waiting, times and histories after.

    Reads on PostgreSQL end with a rollback, so they do not add to xact_commit.
    """

    def __init__(self, kind: str, target: str) -> None:
        self.kind = kind
        self._target = target
        self._connection: Any = None

    def _connect(self) -> Any:
        if self._connection is None:
            if self.kind == "postgres":
                self._connection = psycopg2.connect(self._target)
            else:
                self._connection = sqlite3.connect(self._target, timeout=30, isolation_level=None)
        return self._connection

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        connection = self._connect()
        if self.kind == "postgres":
            try:
                with connection.cursor() as cursor:
                    cursor.execute(sql, params)
                    return list(cursor.fetchall())
            finally:
                connection.rollback()
        return list(connection.execute(sql.replace("%s", "?"), params).fetchall())

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """A write (PostgreSQL only), committed."""
        connection = self._connect()
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
        connection.commit()

    def count_final(self, customer_id: str) -> int:
        placeholders = ", ".join(["%s"] * len(FINAL))
        rows = self._query(
            f"SELECT count(*) FROM sagas WHERE customer_id = %s AND status IN ({placeholders})", (customer_id, *FINAL)
        )
        return int(rows[0][0])

    def rows(self, customer_id: str, with_history: bool = False) -> list[SagaRow]:
        histories: dict[str, list[dict[str, Any]]] = {}
        if with_history:
            for saga_id, *entry in self._query(
                "SELECT h.saga_id, h.at, h.kind, h.type, h.message_id, h.detail FROM saga_history h"
                " JOIN sagas s ON s.id = h.saga_id WHERE s.customer_id = %s ORDER BY h.saga_id, h.seq",
                (customer_id,),
            ):
                histories.setdefault(saga_id, []).append(dict(zip(HISTORY_FIELDS, entry, strict=True)))
        found = []
        for row in self._query(
            "SELECT id, status, created_at, updated_at, completed_at FROM sagas WHERE customer_id = %s", (customer_id,)
        ):
            found.append(
                SagaRow(
                    row[0],
                    row[1],
                    self._time(row[2]),
                    self._time(row[3]),
                    self._time(row[4]) if row[4] else None,
                    histories.get(row[0], []) if with_history else None,
                )
            )
        return found

    def saga_times(self, saga_id: str) -> tuple[str, datetime, datetime | None] | None:
        rows = self._query("SELECT status, created_at, completed_at FROM sagas WHERE id = %s", (saga_id,))
        if not rows:
            return None
        status, created, completed = rows[0]
        return status, self._time(created), self._time(completed) if completed else None

    def step_times(self, customer_id: str) -> dict[str, list[tuple[str, datetime, datetime | None]]]:
        """Per saga of `customer_id`: its outbox entries in order, as (command type, queued at, delivered at)."""
        found: dict[str, list[tuple[str, datetime, datetime | None]]] = {}
        rows = self._query(
            "SELECT o.saga_id, o.command_type, o.created_at, o.sent_at FROM outbox o JOIN sagas s ON s.id = o.saga_id "
            "WHERE s.customer_id = %s ORDER BY o.saga_id, o.id",
            (customer_id,),
        )
        for saga_id, command_type, created, sent in rows:
            found.setdefault(saga_id, []).append(
                (command_type, self._time(created), self._time(sent) if sent else None)
            )
        return found

    def outbox_unsent(self) -> tuple[int, int]:
        """(rows, rows not yet sent) of the outbox."""
        rows = self._query("SELECT count(*), count(*) FILTER (WHERE sent_at IS NULL) FROM outbox")
        return int(rows[0][0]), int(rows[0][1])

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._query(sql, params)[0][0]

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._query(sql, params)

    @staticmethod
    def _time(value: Any) -> datetime:
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        moment = datetime.fromisoformat(str(value))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def check_histories(rows: Sequence[SagaRow]) -> dict[str, Any]:
    """Every saga processed once: each success event and each step command exactly once, in order."""
    twice_events = 0
    twice_commands = 0
    other = 0
    examples: list[str] = []
    for row in rows:
        history = row.history or []
        events = [entry["type"] for entry in history if entry.get("kind") == "event"]
        commands = [entry["type"] for entry in history if entry.get("kind") == "command"]
        if row.status != "COMPLETED":
            continue
        if any(events.count(name) > 1 for name in SUCCESS_EVENTS):
            twice_events += 1
            if len(examples) < 3:
                examples.append(f"{row.id}: events {events}")
        elif events != SUCCESS_EVENTS:
            other += 1
            if len(examples) < 3:
                examples.append(f"{row.id}: events {events}")
        if commands != STEP_COMMANDS:
            twice_commands += 1
            if len(examples) < 3:
                examples.append(f"{row.id}: commands {commands}")
    return {
        "checked": len(rows),
        "completed": sum(1 for row in rows if row.status == "COMPLETED"),
        "sagas_with_an_event_twice": twice_events,
        "sagas_with_other_event_sequences": other,
        "sagas_with_commands_resent_or_out_of_order": twice_commands,
        "examples": examples,
    }
