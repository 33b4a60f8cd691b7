"""`saga simulate --transport http`: the four participant services as one HTTP server.

Every participant takes `POST /commands` (one base URL serves all four) and answers
as the contract's HTTP transport allows: `200` with the reply event, or `202` and the
event later by `POST {orchestrator}/api/events`. Options make it misbehave on
purpose: a step that fails by its failure event (`fail_step`), one refused with
`422` (`reject_step`), one never answered (`silent_step`), a delay, and random
`503`s (`flaky`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import requests
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from saga.adapters.simulated_participants import ACTION_COMMAND, SIMULATABLE_ACTIONS, SimulatedParticipants
from saga.domain.messages import COMMANDS, JsonObject
from saga.service_layer.backoff import Backoff

log = logging.getLogger(__name__)

MAX_COMMAND_BYTES = 1024 * 1024
DELIVERY_ATTEMPTS = 5
DELIVERY_BACKOFF_SECONDS = 0.2
DELIVERY_BACKOFF_MAX_SECONDS = 1.6
DELIVERY_TIMEOUT_SECONDS = (2.0, 10.0)


@dataclass(frozen=True)
class SimulatorOptions:
    fail_step: str | None = None
    """Answered with its failure event."""
    reject_step: str | None = None
    """Answered with 422: the transport's rejection path."""
    silent_step: str | None = None
    """Accepted with 202 and never answered: the deadline path."""
    delay_ms: int = 0
    """Wait before answering (sync) or before delivering the event (async)."""
    async_mode: bool = False
    orchestrator_url: str | None = None
    events_token: str | None = None
    flaky: float = 0.0
    """Probability of answering a command with 503 without looking at it."""
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in (self.fail_step, self.reject_step, self.silent_step):
            if name is not None and name not in ACTION_COMMAND:
                raise ValueError(f"unknown step {name!r}; expected one of {', '.join(SIMULATABLE_ACTIONS)}")
        if self.delay_ms < 0:
            raise ValueError("delay must not be negative")
        if not 0.0 <= self.flaky <= 1.0:
            raise ValueError("flaky must be a probability between 0 and 1")
        if self.async_mode and not self.orchestrator_url:
            raise ValueError("async mode needs the orchestrator's URL to deliver events to")
        if self.orchestrator_url and not self.orchestrator_url.startswith(("http://", "https://")):
            raise ValueError(f"orchestrator URL must be http:// or https://, got {self.orchestrator_url!r}")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"success": False, "error": message}, status_code=status)


class HttpParticipants:
    """The endpoints; all run on the event loop, so the random generator needs no lock."""

    def __init__(self, options: SimulatorOptions) -> None:
        self._options = options
        self._simulation = SimulatedParticipants(fail_step=options.fail_step, silent_step=options.silent_step)
        self._rejected = ACTION_COMMAND[options.reject_step] if options.reject_step else None
        self._random = random.Random(options.seed)
        self._delay = options.delay_ms / 1000
        self._session = requests.Session()
        self._deliveries: set[asyncio.Task[None]] = set()
        headers = {"Content-Type": "application/json"}
        if options.events_token:
            headers["Authorization"] = f"Bearer {options.events_token}"
        self._session.headers.update(headers)
        self._events_url = f"{(options.orchestrator_url or '').rstrip('/')}/api/events"

    async def commands(self, request: Request) -> Response:
        if self._options.flaky and self._random.random() < self._options.flaky:
            return _error(503, "simulated outage; try again")
        body = await request.body()
        if len(body) > MAX_COMMAND_BYTES:
            return _error(413, f"command must be at most {MAX_COMMAND_BYTES} bytes")
        try:
            command = json.loads(body)
        except (ValueError, RecursionError):
            return _error(400, "command is not valid UTF-8 JSON")
        problem = self._command_problem(command)
        if problem is not None:
            return _error(400, problem)
        if command["type"] == self._rejected:
            return _error(422, f"simulated rejection of {command['type']}")
        if self._options.async_mode:
            reply = self._simulation.handle(command)
            if reply is not None:
                self._schedule_delivery(reply)
            return JSONResponse({"success": True, "accepted": command["message_id"]}, status_code=202)
        if self._delay:
            await asyncio.sleep(self._delay)
        reply = self._simulation.handle(command)
        if reply is None:
            return JSONResponse({"success": True, "accepted": command["message_id"]}, status_code=202)
        return JSONResponse(reply)

    @staticmethod
    def _command_problem(command: object) -> str | None:
        if not isinstance(command, dict):
            return "command must be a JSON object"
        if command.get("type") not in COMMANDS:
            return f"unknown command type {str(command.get('type'))[:80]!r}"
        for name in ("correlation_id", "message_id"):
            # The simulation remembers replies by message_id and addresses them by correlation_id.
            if not isinstance(command.get(name), str) or not command[name]:
                return f"{name} must be a non-empty string"
        return None

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def _schedule_delivery(self, event: JsonObject) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(event))
        # The loop keeps only weak references to tasks: hold each until it is done.
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, event: JsonObject) -> None:
        if self._delay:
            await asyncio.sleep(self._delay)
        backoff = Backoff(DELIVERY_BACKOFF_MAX_SECONDS, DELIVERY_BACKOFF_SECONDS)
        for attempt in range(1, DELIVERY_ATTEMPTS + 1):
            problem = await run_in_threadpool(self._post_event, event)
            if problem is None:
                return
            if attempt < DELIVERY_ATTEMPTS:
                log.info(
                    "delivering %s for saga %s failed (%s); retrying", event["type"], event["correlation_id"], problem
                )
                await asyncio.sleep(backoff.next_pause())
        log.warning(
            "gave up delivering %s for saga %s after %d attempts",
            event["type"],
            event["correlation_id"],
            DELIVERY_ATTEMPTS,
        )

    def _post_event(self, event: JsonObject) -> str | None:
        """None when the orchestrator took the event or refused it for good; else the transient problem."""
        try:
            response = self._session.post(
                self._events_url, data=json.dumps(event, allow_nan=False).encode(), timeout=DELIVERY_TIMEOUT_SECONDS
            )
        except requests.RequestException as error:
            return type(error).__name__
        if response.status_code >= 500:
            return f"status {response.status_code}"
        if response.status_code >= 400:
            # A 4xx will not change on a retry (bad event, unknown saga, wrong token).
            log.warning(
                "orchestrator refused %s for saga %s: %d %s",
                event["type"],
                event["correlation_id"],
                response.status_code,
                response.text[:200],
            )
        return None

    async def close(self) -> None:
        for task in list(self._deliveries):
            task.cancel()
        await asyncio.gather(*self._deliveries, return_exceptions=True)
        self._session.close()


def create_simulator_app(options: SimulatorOptions) -> Starlette:
    participants = HttpParticipants(options)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await participants.close()

    routes = [
        Route("/commands", participants.commands, methods=["POST"]),
        Route("/healthz", participants.healthz, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def run_http_simulator(host: str, port: int, options: SimulatorOptions, log_level: str = "info") -> None:
    """Serves the simulated participants until interrupted. Raises ValueError for bad options."""
    app = create_simulator_app(options)
    log.info(
        "simulated participants on http://%s:%d/commands (%s)",
        host,
        port,
        "async, events to " + (options.orchestrator_url or "") if options.async_mode else "sync",
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
