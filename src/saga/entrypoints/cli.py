"""`saga`: serve the API, run a worker, migrate the database, simulate participants, audit."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

from saga.adapters.simulated_participants import SIMULATABLE_ACTIONS
from saga.entrypoints.audit_command import add_audit_parser, run_audit
from saga.entrypoints.config import ConfigError, Settings
from saga.entrypoints.logs import configure_logging
from saga.entrypoints.otel import configure_tracing
from saga.entrypoints.simulate_platform import add_platform_options

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 5
"""How long requests in progress may finish after SIGINT or SIGTERM."""


class _Parser(argparse.ArgumentParser):
    """argparse, with a mistake on the command line told in one line (and `--help` for the rest)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 65535):
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to 65535, got {text!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="saga", description="Create-order saga orchestrator")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = commands.add_parser("serve", help="HTTP API plus event processing in one process")
    serve.add_argument("--host", help="interface to bind (default: SAGA_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=_port, help="port (default: PORT or 3101)")
    serve.add_argument("--no-migrate", action="store_true", help="do not apply database migrations at start")
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="API only: leave events and deadlines to `saga worker` (this process still sends the commands it commits)",
    )

    worker = commands.add_parser("worker", help="event processing, outbox relay and deadline sweeps, without the API")
    worker.add_argument("--no-migrate", action="store_true", help="do not apply database migrations at start")
    worker.add_argument("--port", type=_port, help="also answer /healthz, /readyz and /metrics on this port")
    worker.add_argument("--host", help="interface for --port (default: SAGA_HOST or 127.0.0.1)")

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, parser_class=_Parser)
    db_commands.add_parser("upgrade", help="apply all migrations")
    db_commands.add_parser("current", help="print the schema revision")

    simulate = commands.add_parser("simulate", help="play the four participant services, for trying the saga out")
    simulate.add_argument(
        "--transport", choices=("http", "kafka"), default="http", help="how commands arrive (default: http)"
    )
    simulate.add_argument("--host", default="127.0.0.1", help="interface to bind, http only (default: 127.0.0.1)")
    simulate.add_argument("--port", type=_port, default=3102, help="port, http only (default: 3102)")
    steps = ", ".join(SIMULATABLE_ACTIONS)
    simulate.add_argument(
        "--fail-step", metavar="STEP", help=f"answer this step or compensation with its failure event: {steps}"
    )
    simulate.add_argument(
        "--reject-step", metavar="STEP", help=f"refuse this step or compensation with 422, http only: {steps}"
    )
    simulate.add_argument(
        "--silent-step", metavar="STEP", help=f"accept this step or compensation and never answer: {steps}"
    )
    simulate.add_argument("--delay-ms", type=int, default=0, help="wait this long before each answer")
    simulate.add_argument(
        "--async",
        dest="async_mode",
        action="store_true",
        help="answer 202 and deliver the event later to the orchestrator's /api/events",
    )
    simulate.add_argument(
        "--orchestrator-url",
        help="where events not answered in the HTTP response go: --async's, and the platform profile's late "
        "and second replies (default: http://127.0.0.1:PORT of the orchestrator)",
    )
    simulate.add_argument("--events-token", help="bearer token for /api/events (default: SAGA_EVENTS_TOKEN)")
    simulate.add_argument("--flaky", type=float, default=0.0, metavar="P", help="answer 503 with probability P")
    simulate.add_argument("--seed", type=int, help="seed for --flaky, to repeat a run")
    simulate.add_argument("--duplicate", action="store_true", help="publish every reply twice, kafka only")
    simulate.add_argument("--group-id", help="consumer group, kafka only (default: create-order-saga-simulator)")
    simulate.add_argument(
        "--received-log", metavar="FILE", help="append each command received (message_id type saga_id), kafka only"
    )
    add_platform_options(simulate)
    add_audit_parser(commands)

    from saga.entrypoints import torture

    torture.add_arguments(
        commands.add_parser("torture", help="a seeded run of sagas under faults against real servers, with invariants")
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"saga: configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if args.command in ("serve", "worker"):
        configure_tracing()
    # kafka-python narrates every connection and rebalance at INFO.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))
    try:
        if args.command == "serve":
            return _serve(settings, args)
        if args.command == "worker":
            return _worker(settings, args)
        if args.command == "simulate":
            return _simulate(settings, args)
        if args.command == "audit":
            return run_audit(settings, args)
        if args.command == "torture":
            from saga.entrypoints import torture

            return torture.run(args)
        return _db(settings, args.db_command)
    except ConfigError as error:
        print(f"saga: configuration error: {error}", file=sys.stderr)
        return 2


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from saga.entrypoints.container import build_container, running
    from saga.entrypoints.http_api import create_app

    host = args.host or settings.host
    warn_about_open_endpoints(host, settings)
    container = build_container(settings, migrate=not args.no_migrate, relay_only=args.no_worker)
    stop = _stop_on_signals()
    with running(container):
        if not stop.is_set():
            _serve_http(create_app(container), host, args.port or settings.port, settings)
    return 0


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or address to bind) is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def warn_about_open_endpoints(host: str, settings: Settings) -> None:
    """Logs a warning per kind of endpoint anyone reaching `host` could use: bound beyond
    loopback, `POST /api/events` without SAGA_EVENTS_TOKEN lets them post any participant's
    reply; cancel and retry without SAGA_ADMIN_TOKEN let them act on any saga
    (docs/operations.md, "Securing the API")."""
    if is_loopback(host):
        return
    if settings.http.events_token is None:
        log.warning(
            "listening on %s without SAGA_EVENTS_TOKEN: anyone who reaches this port can post participant "
            "events (POST /api/events) and move any saga; set SAGA_EVENTS_TOKEN (docs/operations.md)",
            host,
        )
    if settings.http.admin_token is None:
        log.warning(
            "listening on %s without SAGA_ADMIN_TOKEN: anyone who reaches this port can cancel sagas and "
            "retry their compensations; set SAGA_ADMIN_TOKEN (docs/operations.md)",
            host,
        )


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from saga.entrypoints.container import build_container, running

    if settings.transport == "memory":
        raise ConfigError("`saga worker` needs a shared transport (SAGA_TRANSPORT=kafka or http)")
    container = build_container(settings, migrate=not args.no_migrate)
    stop = _stop_on_signals()
    with running(container):
        log.info("worker running (transport %s)", settings.transport)
        if args.port and not stop.is_set():
            from saga.entrypoints.http_api import create_app

            app = create_app(container, operations_only=True)
            _serve_http(app, args.host or settings.host, args.port, settings)
        else:
            stop.wait()
    return 0


def _stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM: either ends the process cleanly, exit code 0.

    uvicorn puts its own handlers in place while it serves and, once it has shut down,
    restores these and raises the signal again, which lands here instead of killing the
    process before the container's resources are stopped.
    """
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _serve_http(app: object, host: str, port: int, settings: Settings) -> None:
    import uvicorn

    uvicorn.run(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        log_config=None,  # uvicorn's lines go through configure_logging's handler
    )


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    if args.transport == "kafka":
        from saga.entrypoints.simulate_kafka import run_kafka_simulator

        return run_kafka_simulator(settings, args)
    if args.profile == "platform":
        from saga.entrypoints.simulate_platform import run_platform_http_simulator

        token = args.events_token or settings.http.events_token
        # Late and second replies go to the orchestrator's /api/events, as the real services' would.
        orchestrator_url = args.orchestrator_url or f"http://127.0.0.1:{settings.port}"
        run_platform_http_simulator(args.host, args.port, args, orchestrator_url, token, settings.log_level.lower())
        return 0
    from saga.entrypoints.simulate_http import SimulatorOptions, run_http_simulator

    try:
        options = SimulatorOptions(
            fail_step=args.fail_step,
            reject_step=args.reject_step,
            silent_step=args.silent_step,
            delay_ms=args.delay_ms,
            async_mode=args.async_mode,
            orchestrator_url=args.orchestrator_url
            or (f"http://127.0.0.1:{settings.port}" if args.async_mode else None),
            events_token=args.events_token or settings.http.events_token,
            flaky=args.flaky,
            seed=args.seed,
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    run_http_simulator(args.host, args.port, options, log_level=settings.log_level.lower())
    return 0


def _db(settings: Settings, command: str) -> int:
    if not settings.uses_sql:
        raise ConfigError("DATABASE_URL names no SQL database")
    from saga.adapters.sql.migrations import current_revision, upgrade
    from saga.ports.persistence import PersistenceError

    try:
        if command == "upgrade":
            upgrade(settings.database_url)
        print(current_revision(settings.database_url))
    except PersistenceError as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"saga: DATABASE_URL: database unavailable: {detail}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
