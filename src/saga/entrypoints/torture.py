"""`saga torture`: the seeded fault run, from the command line (see saga.torture)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=1, help="seed of the fault schedule and the sagas' plans")
    parser.add_argument("--sagas", type=int, default=1000, help="orders to place (default: 1000)")
    parser.add_argument("--seconds", type=float, default=180.0, help="how long the load and the faults last")
    parser.add_argument("--api-processes", type=int, default=2, help="`saga serve` processes (default: 2)")
    parser.add_argument("--workers", type=int, default=1, help="`saga worker` processes besides them (default: 1)")
    parser.add_argument("--postgres-restarts", type=int, default=2, help="PostgreSQL stops and starts (default: 2)")
    parser.add_argument("--broker-pauses", type=int, default=1, help="broker SIGSTOP/SIGCONT pauses (default: 1)")
    parser.add_argument("--poison", type=int, default=50, help="poison records to publish (default: 50)")
    parser.add_argument(
        "--kill-every", type=float, nargs=2, default=(4.0, 12.0), metavar=("MIN", "MAX"), help="seconds between kills"
    )
    parser.add_argument("--drain-seconds", type=float, default=120.0, help="longest wait for sagas to end")
    parser.add_argument("--workdir", type=Path, help="where data and logs go (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the data and logs after the run")
    parser.add_argument("--report", type=Path, help="also write the report as JSON to this file")
    parser.add_argument(
        "--profile",
        choices=("default", "platform"),
        default="default",
        help="participants: ours, misbehaving in-process (default), or `saga simulate --profile platform` and `saga audit`",
    )
    parser.add_argument("--schedule-only", action="store_true", help="print the fault schedule and exit")


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 when every invariant holds, 1 when one does not, 2 when the run could not start."""
    from saga.torture.servers import ServersUnavailable, check_servers_available

    try:
        check_servers_available()
    except ServersUnavailable as missing:
        print(missing, file=sys.stderr)
        return 2
    from saga.torture.run import TortureOptions, format_report, run_torture

    if args.sagas < 1 or args.seconds <= 10 or args.api_processes < 1 or args.workers < 0:
        print(
            "saga torture: --sagas must be at least 1, --seconds above 10, --api-processes at least 1", file=sys.stderr
        )
        return 2
    options = TortureOptions(
        seed=args.seed,
        sagas=args.sagas,
        seconds=args.seconds,
        api_processes=args.api_processes,
        workers=args.workers,
        postgres_restarts=args.postgres_restarts,
        broker_pauses=args.broker_pauses,
        poison_records=args.poison,
        kill_every=(args.kill_every[0], args.kill_every[1]),
        drain_seconds=args.drain_seconds,
        workdir=args.workdir,
        keep_workdir=args.keep,
        profile=args.profile,
    )
    if args.schedule_only:
        from saga.torture.schedule import fault_schedule

        for fault in fault_schedule(options.seed, options.sizes()):
            print(json.dumps(fault.to_dict(), allow_nan=False))
        return 0
    report = run_torture(options)
    print(format_report(report), flush=True)
    if args.report is not None:
        args.report.write_text(json.dumps(report, indent=2, allow_nan=False))
    return 0 if report["ok"] else 1
