"""`saga simulate --profile platform`: the platform's real services, simulated (docs/contract.md, "The platform's services").

Over Kafka, order, user and payment read their command topics and publish unkeyed
replies; over HTTP, they take `POST /commands`. Either way the same server also
offers the timer's API and the ledger:

- `POST /StartTimer` `{"OrderId", "CustomerId", "RunnerId"}`: 200 once the timer runs;
- `GET /ledger`: the orders and payments the services hold, as JSON Lines
  (`?format=csv` for CSV), the input of `saga audit`;
- `GET /healthz`.

Knobs (each repeatable; a TARGET is a service, `order`, or a command, `create_order`,
or `timer`): `--slow TARGET` (replies `--slow-ms` late), `--silent TARGET` (no effect,
no reply), `--twice TARGET` (processed twice), `--fail TARGET` (the service's own
failure), each at `--slow-rate` / `--silent-rate` / `--twice-rate` / `--fail-rate`
(default 1), repeatable with `--seed`. `--ledger FILE` keeps the ledger as a JSON Lines file.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import requests
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from saga.adapters.platform_participants import KNOB_TARGETS, Knob, Knobs, Ledger, PlatformParticipants
from saga.domain.messages import JsonObject
from saga.entrypoints.config import ConfigError
from saga.ports.ledger import LEDGER_FIELDS

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
NEVER_ANSWER_SECONDS = 3600.0
DEFAULT_SLOW_MS = 60_000
STARTUP_TIMEOUT_SECONDS = 10.0


def add_platform_options(simulate: argparse.ArgumentParser) -> None:
    """Adds the profile and its knobs to `saga simulate`."""
    simulate.add_argument(
        "--profile",
        choices=("default", "platform"),
        default="default",
        help="default: our own contract; platform: the platform's real services as they behave",
    )
    targets = f"one of {', '.join(KNOB_TARGETS)}"
    for knob, what in [
        ("slow", "answer late (--slow-ms)"),
        ("silent", "take commands and do nothing"),
        ("twice", "process each command twice"),
        ("fail", "fail as the service itself fails"),
    ]:
        simulate.add_argument(
            f"--{knob}", action="append", metavar="TARGET", help=f"platform profile: {what}; TARGET is {targets}"
        )
        simulate.add_argument(
            f"--{knob}-rate", type=float, default=1.0, metavar="P", help=f"share of commands --{knob} applies to"
        )
    simulate.add_argument("--slow-ms", type=int, default=DEFAULT_SLOW_MS, help="how late --slow replies come")
    simulate.add_argument("--ledger", metavar="FILE", help="platform profile: keep the ledger in this JSON Lines file")


def platform_from_args(args: argparse.Namespace) -> PlatformParticipants:
    """The platform profile the options describe. Raises ConfigError."""
    refused = {
        "--fail-step": args.fail_step,
        "--silent-step": args.silent_step,
        "--reject-step": args.reject_step,
        "--delay-ms": args.delay_ms,
        "--duplicate": getattr(args, "duplicate", False),
        "--flaky": args.flaky,
    }
    given = [option for option, value in refused.items() if value]
    if given:
        raise ConfigError(
            f"not available with --profile platform: {', '.join(given)} (use --fail, --silent, --slow, --twice)"
        )
    if args.slow_ms < 0:
        raise ConfigError("--slow-ms must not be negative")
    try:
        knobs = Knobs(
            slow=Knob(frozenset(args.slow or ()), args.slow_rate),
            slow_by=timedelta(milliseconds=args.slow_ms),
            silent=Knob(frozenset(args.silent or ()), args.silent_rate),
            twice=Knob(frozenset(args.twice or ()), args.twice_rate),
            fail=Knob(frozenset(args.fail or ()), args.fail_rate),
            seed=args.seed,
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return PlatformParticipants(knobs, ledger=Ledger(Path(args.ledger) if args.ledger else None))


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"success": False, "error": message}, status_code=status)


def create_platform_app(simulation: PlatformParticipants, extra_routes: list[Route] | None = None) -> Starlette:
    """The timer API, the ledger and a health check (and `extra_routes`, such as `/commands`)."""

    async def start_timer(request: Request) -> Response:
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            return _error(413, "body too large")
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "body must be JSON")
        answer = simulation.start_timer(body)
        if answer.delay is None:
            await asyncio.sleep(NEVER_ANSWER_SECONDS)  # silent: the caller times out first
        elif answer.delay:
            await asyncio.sleep(answer.delay)
        return JSONResponse(answer.body, status_code=answer.status)

    async def ledger(request: Request) -> Response:
        rows = simulation.ledger.rows()
        if request.query_params.get("format") == "csv":
            text = io.StringIO()
            writer = csv.DictWriter(text, fieldnames=LEDGER_FIELDS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(row.to_dict() for row in rows)
            return Response(text.getvalue(), media_type="text/csv")
        return Response(simulation.ledger.jsonl(), media_type="application/x-ndjson")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "held_replies": simulation.held()})

    routes = [
        Route("/StartTimer", start_timer, methods=["POST"]),
        Route("/ledger", ledger, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        *(extra_routes or []),
    ]
    return Starlette(routes=routes)


@contextmanager
def serving(app: Starlette, host: str, port: int, log_level: str = "warning") -> Iterator[str]:
    """Serves `app` from a background thread while the block runs; yields its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, name="saga-simulator-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ConfigError(f"the simulator's HTTP server did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def describe(simulation: PlatformParticipants) -> str:
    knobs = simulation.knobs
    parts = [
        f"{name} {','.join(sorted(knob.targets))}" + (f" at {knob.rate:g}" if knob.rate < 1 else "")
        for name, knob in [("slow", knobs.slow), ("silent", knobs.silent), ("twice", knobs.twice), ("fail", knobs.fail)]
        if knob.targets
    ]
    return "; ".join(parts) or "no knobs"


RELEASE_POLL_SECONDS = 0.1
DELIVERY_ATTEMPTS = 5
DELIVERY_TIMEOUT_SECONDS = (2.0, 10.0)


class PlatformCommands:
    """`POST /commands` for the platform profile over the HTTP transport.

    A command with exactly one reply due now is answered `200` with it; otherwise `202`,
    and every reply (a second one, a late one) is delivered to the orchestrator's
    `POST /api/events`, as the platform's services publish them whenever they are ready.
    """

    def __init__(
        self, simulation: PlatformParticipants, orchestrator_url: str | None, events_token: str | None
    ) -> None:
        self._simulation = simulation
        self._events_url = f"{orchestrator_url.rstrip('/')}/api/events" if orchestrator_url else None
        self._session = requests.Session()
        self._session.headers["Content-Type"] = "application/json"
        if events_token:
            self._session.headers["Authorization"] = f"Bearer {events_token}"
        self._stop = threading.Event()
        self._releaser = threading.Thread(target=self._release_loop, name="saga-simulator-release", daemon=True)

    def start(self) -> None:
        self._releaser.start()

    def close(self) -> None:
        self._stop.set()
        if self._releaser.is_alive():
            self._releaser.join(timeout=5)
        self._session.close()

    async def commands(self, request: Request) -> Response:
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            return _error(413, "command too large")
        try:
            command = json.loads(raw)
        except ValueError:
            return _error(400, "command is not valid UTF-8 JSON")
        if not isinstance(command, dict) or not isinstance(command.get("type"), str):
            return _error(400, "command must be a JSON object with a type")
        replies = await run_in_threadpool(self._simulation.handle, command)
        self._simulation.ledger.flush()
        if len(replies) == 1:
            return JSONResponse(replies[0])
        # Answered first, delivered after, as a service publishes: the orchestrator's relay
        # may hold its outbox row (on SQLite, the database) until this answer arrives.
        threading.Thread(target=self._deliver, args=(replies,), name="saga-simulator-deliver", daemon=True).start()
        return JSONResponse({"success": True, "accepted": command.get("type")}, status_code=202)

    def _release_loop(self) -> None:
        while not self._stop.wait(RELEASE_POLL_SECONDS):
            late = self._simulation.release()
            if late:
                self._simulation.ledger.flush()
                self._deliver(late)

    def _deliver(self, replies: list[JsonObject]) -> None:
        for reply in replies:
            if self._events_url is None:
                log.warning("%s for saga %s dropped: no --orchestrator-url", reply["type"], reply["correlation_id"])
                continue
            for attempt in range(DELIVERY_ATTEMPTS):
                try:
                    response = self._session.post(
                        self._events_url, data=json.dumps(reply, allow_nan=False), timeout=DELIVERY_TIMEOUT_SECONDS
                    )
                except requests.RequestException as error:
                    problem = type(error).__name__
                else:
                    if response.status_code < 500:
                        break
                    problem = f"status {response.status_code}"
                log.info("delivering %s failed (%s), attempt %d", reply["type"], problem, attempt + 1)
                if self._stop.wait(0.2 * 2**attempt):
                    return


def run_platform_http_simulator(
    host: str, port: int, args: argparse.Namespace, orchestrator_url: str, events_token: str | None, log_level: str
) -> None:
    """`saga simulate --transport http --profile platform`: `/commands`, the timer API and the ledger on one port;
    replies not given in a command's answer (late, second) are posted to `orchestrator_url`'s `/api/events`."""
    simulation = platform_from_args(args)
    commands = PlatformCommands(simulation, orchestrator_url, events_token)
    app = create_platform_app(simulation, [Route("/commands", commands.commands, methods=["POST"])])
    commands.start()
    log.info("platform profile (%s) on http://%s:%d: /commands, /StartTimer, /ledger", describe(simulation), host, port)
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, timeout_graceful_shutdown=1)
    finally:
        commands.close()
        simulation.ledger.flush()
