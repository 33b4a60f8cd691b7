"""The timer's own HTTP API as a command transport (docs/contract.md, "Transport per participant").

`start_order_timer` becomes `POST {SCHEDULER_SERVICE_URL}/StartTimer` with the body
`{"OrderId": <order_id>, "CustomerId": <customer_id>, "RunnerId": ""}`:

- any 2xx: the timer started; it stands for `timer.started` (the body is not read, and
  no event follows);
- 408, 429, 5xx, connection errors and timeouts: transient (`Undelivered`); the outbox
  re-sends it within the step's re-sends, after which the step fails by deadline;
- any other answer: the timer did not start; it stands for `timer.failed` (`Rejected`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import requests
from requests.adapters import HTTPAdapter

from saga.adapters.http_publisher import UNREACHABLE, excerpt, post_streamed, read_at_most, retry_after
from saga.domain.messages import Command, Event
from saga.ports.messaging import CommandPublisher, Delivered, Rejected, SendResult, Undelivered
from saga.ports.trace_context import trace_headers

TIMER_COMMAND = "start_order_timer"
TIMER_STARTED = "timer.started"
TRANSIENT_STATUSES = frozenset({408, 429})
MAX_ERROR_BODY_BYTES = 4096


def start_timer_body(command: Command) -> dict[str, object]:
    """The body the timer API reads, from a `start_order_timer` command's payload."""
    return {
        "OrderId": command.payload.get("order_id"),
        "CustomerId": command.payload.get("customer_id"),
        "RunnerId": "",
    }


class TimerApiPublisher(CommandPublisher):
    """Sends `start_order_timer` commands to the timer's `POST /StartTimer`.

    `session` may be given to reach the API another way (tests mount an in-process
    adapter on it); `clock` stamps the `timer.started` a 2xx stands for.
    """

    def __init__(
        self,
        base_url: str,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        max_parallel: int = 8,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"the timer API's URL must be http:// or https://, got {base_url!r}")
        self._url = base_url.rstrip("/") + "/StartTimer"
        self._timeout = (connect_timeout, read_timeout)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._session = session or requests.Session()
        if session is None:
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max_parallel, max_retries=0)
            self._session.mount("http://", adapter)
            self._session.mount("https://", adapter)
        self._senders = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="saga-timer-api")

    def publish(self, commands: Sequence[Command]) -> list[SendResult]:
        if len(commands) <= 1:
            return [self._send(command) for command in commands]
        return list(self._senders.map(self._send, commands))

    def close(self) -> None:
        self._senders.shutdown(wait=True)
        self._session.close()

    def _send(self, command: Command) -> SendResult:
        if command.type != TIMER_COMMAND:
            return Rejected(f"the timer API carries only {TIMER_COMMAND}, not {command.type}")
        data = json.dumps(start_timer_body(command), allow_nan=False).encode()
        headers = {"Content-Type": "application/json", **trace_headers(command.saga_id, command.message_id)}
        try:
            with post_streamed(self._session, self._url, data, headers, self._timeout) as response:
                status = response.status_code
                wait = retry_after(response.headers.get("Retry-After"))
                body = b"" if 200 <= status < 300 else read_at_most(response, MAX_ERROR_BODY_BYTES)
        except UNREACHABLE as error:
            return Undelivered(f"timer API at {self._url} unreachable: {type(error).__name__}: {excerpt(str(error))}")
        if 200 <= status < 300:
            return Delivered(reply=Event(TIMER_STARTED, command.saga_id, {"status": status}, self._clock(), None))
        text = excerpt(body.decode("utf-8", errors="replace"))
        if status in TRANSIENT_STATUSES or status >= 500:
            return Undelivered(f"timer API answered {status}: {text}", retry_after=wait)
        return Rejected(f"timer API answered {status}: {text}")
