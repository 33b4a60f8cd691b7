"""`saga audit LEDGER`: compare the sagas in DATABASE_URL with the participants' records.

Prints each disagreement (and, with `--verbose`, each saga in flight or resource
acknowledged), then one summary line; `--json` prints the report as one JSON object.
Exit status: 0 consistent, 1 a disagreement, 2 the ledger or the database cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from saga.adapters.ledger_files import FORMATS, LedgerUnreadable, read_ledger
from saga.entrypoints.config import ConfigError, Settings
from saga.ports.persistence import StorageUnavailable
from saga.service_layer.audit import DEFAULT_PAGE_SIZE, audit, stored_sagas

CONSISTENT, DISAGREEMENT, UNREADABLE = 0, 1, 2


def add_audit_parser(commands: Any) -> None:
    """Adds `audit` to the CLI's subcommands."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "audit", help="compare the sagas with a ledger of the participants' orders and payments"
    )
    parser.add_argument("ledger", help="CSV or JSON Lines file, or an http(s) URL such as the simulator's /ledger")
    parser.add_argument("--format", choices=FORMATS, help="ledger format (default: csv for *.csv, else jsonl)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--verbose", action="store_true", help="also list sagas in flight and acknowledged resources")
    parser.add_argument(
        "--page-size", type=int, default=DEFAULT_PAGE_SIZE, help=f"sagas read per query (default {DEFAULT_PAGE_SIZE})"
    )


def run_audit(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.uses_sql:
        raise ConfigError("DATABASE_URL names no SQL database to audit")
    if args.page_size < 1:
        raise ConfigError("--page-size must be at least 1")
    from saga.entrypoints.container import build_container

    container = build_container(settings)
    try:
        report = audit(stored_sagas(container.unit_of_work, args.page_size), read_ledger(args.ledger, args.format))
    except LedgerUnreadable as error:
        print(f"saga audit: {error}", file=sys.stderr)
        return UNREADABLE
    except StorageUnavailable as error:
        print(f"saga audit: database unavailable: {error}", file=sys.stderr)
        return UNREADABLE
    finally:
        container.shutdown_resources()  # disposes the engine
    if args.json:
        body = {
            "consistent": report.consistent,
            "sagas": report.sagas,
            "ledger_rows": report.ledger_rows,
            "seconds": round(report.seconds, 3),
            "findings": [finding.to_dict() for finding in report.findings],
        }
        print(json.dumps(body, allow_nan=False))
    else:
        for finding in report.findings:
            if finding.kind.is_disagreement or args.verbose:
                resources = f" [{', '.join(finding.resources)}]" if finding.resources else ""
                print(f"{finding.kind}\t{finding.saga_id or '-'}\t{finding.detail}{resources}")
        print(report.summary())
    return CONSISTENT if report.consistent else DISAGREEMENT
