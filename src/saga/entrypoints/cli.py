"""`saga`: serve the API, run a worker, migrate the database, simulate participants, audit."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from saga.entrypoints.audit_command import add_audit_parser, run_audit
from saga.entrypoints.config import ConfigError, Settings
from saga.entrypoints.logs import configure_logging
from saga.entrypoints.simulate_platform import add_platform_options


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="saga", description="Create-order saga orchestrator")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="HTTP API plus event processing in one process")
    serve.add_argument("--host", help="interface to bind (default: SAGA_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: PORT or 3101)")
    serve.add_argument("--no-migrate", action="store_true", help="do not apply database migrations at start")
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="API only: leave events and deadlines to `saga worker` (this process still sends the commands it commits)",
    )

    worker = commands.add_parser("worker", help="event processing, outbox relay and deadline sweeps, without the API")
    worker.add_argument("--no-migrate", action="store_true", help="do not apply database migrations at start")
    worker.add_argument("--port", type=int, help="also answer /healthz, /readyz and /metrics on this port")
    worker.add_argument("--host", help="interface for --port (default: SAGA_HOST or 127.0.0.1)")

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply all migrations")
    db_commands.add_parser("current", help="print the schema revision")

    simulate = commands.add_parser("simulate", help="play the four participant services, for trying the saga out")
    simulate.add_argument(
        "--transport", choices=("http", "kafka"), default="http", help="how commands arrive (default: http)"
    )
    simulate.add_argument("--host", default="127.0.0.1", help="interface to bind, http only (default: 127.0.0.1)")
    simulate.add_argument("--port", type=int, default=3102, help="port, http only (default: 3102)")
    simulate.add_argument("--fail-step", metavar="STEP", help="answer this step or compensation with its failure event")
    simulate.add_argument("--reject-step", metavar="STEP", help="refuse this step or compensation with 422, http only")
    simulate.add_argument("--silent-step", metavar="STEP", help="accept this step or compensation and never answer")
    simulate.add_argument("--delay-ms", type=int, default=0, help="wait this long before each answer")
    simulate.add_argument(
        "--async",
        dest="async_mode",
        action="store_true",
        help="answer 202 and deliver the event later to the orchestrator's /api/events",
    )
    simulate.add_argument(
        "--orchestrator-url", help="where --async delivers events (default: http://127.0.0.1:PORT of the orchestrator)"
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
    configure_logging(settings.log_level)
    # kafka-python narrates every connection and rebalance at INFO.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))
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


def _migrate(settings: Settings) -> None:
    if settings.uses_sql:
        from saga.adapters.sql.migrations import upgrade

        upgrade(settings.database_url)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from saga.entrypoints.container import build_container
    from saga.entrypoints.http_api import create_app

    if not args.no_migrate:
        _migrate(settings)
    container = build_container(settings)
    app = create_app(container, run_worker=not args.no_worker)
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )
    return 0


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from saga.entrypoints.container import build_container

    if settings.transport == "memory":
        raise ConfigError("`saga worker` needs a shared transport (SAGA_TRANSPORT=kafka or http)")
    if not args.no_migrate:
        _migrate(settings)
    container = build_container(settings)
    if args.port:
        import uvicorn

        from saga.entrypoints.http_api import create_app

        # uvicorn owns the signals and the lifespan starts and stops the worker.
        app = create_app(container, run_worker=True, operations_only=True)
        uvicorn.run(
            app, host=args.host or settings.host, port=args.port, log_level=settings.log_level.lower(), access_log=False
        )
        return 0
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    worker = container.worker()
    worker.start()
    logging.getLogger(__name__).info("worker running (transport %s)", settings.transport)
    stop.wait()
    worker.stop()
    container.publisher().close()
    return 0


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    if args.transport == "kafka":
        from saga.entrypoints.simulate_kafka import run_kafka_simulator

        return run_kafka_simulator(settings, args)
    if args.profile == "platform":
        from saga.entrypoints.simulate_platform import run_platform_http_simulator

        token = args.events_token or settings.http.events_token
        run_platform_http_simulator(args.host, args.port, args, token, settings.log_level.lower())
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
    from saga.ports.persistence import StorageUnavailable

    try:
        if command == "upgrade":
            upgrade(settings.database_url)
        print(current_revision(settings.database_url))
    except StorageUnavailable as error:
        print(f"saga: database unavailable: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
