"""The HTTP command transport: each command is a `POST {base}/commands` to its participant.

Status mapping (docs/contract.md, "HTTP fallback transport"): 200 with an event
envelope answering this command is the reply; 202 means the reply comes later to
`POST /api/events`; 408, 429, 5xx, connection errors and timeouts are transient; any
other 4xx fails the step. Transient failures are not retried here: the outbox relay
re-sends them with exponential backoff and jitter, waiting at least as long as a
`Retry-After` asks (at most MAX_RETRY_AFTER), so one dead participant never holds the relay.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError as Urllib3Error

from saga.adapters.envelope import BadMessage, decode_event, encode_command
from saga.domain.messages import Command, Event, Participant
from saga.ports.messaging import CommandPublisher, Delivered, Rejected, SendResult, Undelivered
from saga.ports.trace_context import trace_headers

log = logging.getLogger(__name__)

EXCERPT_CHARS = 200
ACCEPTED_STATUSES = (202, 204)
"""The participant took the command and will answer by `POST /api/events`."""
TRANSIENT_CLIENT_STATUSES = (408, 429)
"""4xx statuses that mean "not now" (request timeout, too many requests), not "never"."""
MAX_RETRY_AFTER = timedelta(hours=1)
"""The longest `Retry-After` honoured: a participant cannot park a command for days."""


def retry_after(value: str | None, now: datetime | None = None) -> timedelta | None:
    """A `Retry-After` header (RFC 9110: delay in seconds, or an HTTP date) as a wait,
    at most MAX_RETRY_AFTER; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return min(timedelta(seconds=int(text[:8])), MAX_RETRY_AFTER)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    wait = moment - (now or datetime.now(UTC))
    return max(timedelta(0), min(wait, MAX_RETRY_AFTER))


class InvalidReply(ValueError):
    """A 200 body that cannot stand as this command's reply."""


UNREACHABLE = (requests.RequestException, Urllib3Error, OSError)
"""What a send raises when the participant cannot be reached (refused, reset, timed out)."""


def post_streamed(
    session: requests.Session, url: str, data: bytes, headers: Mapping[str, str], timeout: tuple[float, float]
) -> requests.Response:
    """POSTs `data` (`timeout`: connect and read seconds) without following redirects, the
    answer's body left unread for `read_at_most`; use it as a context manager, which
    releases the connection. Raises one of UNREACHABLE."""
    return session.post(url, data=data, headers=headers, timeout=timeout, allow_redirects=False, stream=True)


def read_at_most(response: requests.Response, limit: int) -> bytes:
    """The answer's body up to `limit` bytes, and one byte more when it is longer, so the
    caller can tell; the rest is not worth reading."""
    body = bytearray()
    for chunk in response.iter_content(chunk_size=min(limit + 1, 64 * 1024)):
        body += chunk
        if len(body) > limit:
            break
    return bytes(body[: limit + 1])


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The start of a response body on one line, for logs and rejection reasons."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class HttpCommandPublisher(CommandPublisher):
    def __init__(
        self,
        service_urls: Mapping[Participant, str],
        connect_timeout: float = 2.0,
        read_timeout: float = 10.0,
        max_parallel: int = 8,
        max_reply_bytes: int = 1024 * 1024,
        participants: Collection[Participant] = tuple(Participant),
    ) -> None:
        """`participants`: those this transport serves (each needs a URL); the others have their own."""
        missing = [participant.value for participant in participants if not service_urls.get(participant)]
        if missing:
            raise ValueError(f"no service URL for {', '.join(missing)}")
        self._command_urls = {participant: url.rstrip("/") + "/commands" for participant, url in service_urls.items()}
        self._timeout = (connect_timeout, read_timeout)
        self._max_reply_bytes = max_reply_bytes
        self._session = requests.Session()
        # One pool per participant host, each as large as the number of parallel sends,
        # so a batch never waits for a connection or opens throwaway ones.
        adapter = HTTPAdapter(pool_connections=len(Participant), pool_maxsize=max_parallel, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update({"Content-Type": "application/json", "Accept": "application/json"})
        self._senders = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="saga-http-send")

    def publish(self, commands: Sequence[Command]) -> list[SendResult]:
        if len(commands) == 1:
            return [self._send(commands[0])]
        # Parallel sends: one slow participant costs a batch one timeout, not one per command.
        return list(self._senders.map(self._send, commands))

    def close(self) -> None:
        self._senders.shutdown(wait=True)
        self._session.close()

    def _send(self, command: Command) -> SendResult:
        url = self._command_urls[command.participant]
        headers = trace_headers(command.saga_id, command.message_id)
        try:
            with post_streamed(self._session, url, encode_command(command), headers, self._timeout) as response:
                status = response.status_code
                wait = retry_after(response.headers.get("Retry-After"))
                body = read_at_most(response, self._max_reply_bytes)
        except UNREACHABLE as error:
            return Undelivered(
                f"{command.participant} service at {url} unreachable: {type(error).__name__}: {excerpt(str(error))}"
            )
        if status == 200:
            return self._reply(command, url, body)
        if status in ACCEPTED_STATUSES:
            return Delivered()
        text = excerpt(body.decode("utf-8", errors="replace"))
        if 400 <= status < 500 and status not in TRANSIENT_CLIENT_STATUSES:
            return Rejected(f"{command.participant} service answered {status}: {text}")
        return Undelivered(f"{command.participant} service answered {status}: {text}", retry_after=wait)

    def _reply(self, command: Command, url: str, body: bytes) -> SendResult:
        try:
            event = self._parse_reply(command, body)
        except InvalidReply as invalid:
            # The participant may or may not have acted; a re-send (same message_id) asks again.
            log.warning(
                "%s of saga %s: 200 from %s is not a usable reply (%s); treated as a failed attempt",
                command.type,
                command.saga_id,
                url,
                invalid,
            )
            return Undelivered(f"{command.participant} service answered 200 with an unusable reply: {invalid}")
        return Delivered(reply=event)

    def _parse_reply(self, command: Command, body: bytes) -> Event:
        if len(body) > self._max_reply_bytes:
            raise InvalidReply(f"body larger than {self._max_reply_bytes} bytes")
        try:
            event = decode_event(body)
        except BadMessage as bad:
            raise InvalidReply(str(bad)) from None
        if event.saga_id != command.saga_id:
            raise InvalidReply(f"it names saga {event.saga_id}, not {command.saga_id}")
        if event.type not in (command.reply.success, command.reply.failure):
            raise InvalidReply(f"{event.type} does not answer {command.type}")
        return event
