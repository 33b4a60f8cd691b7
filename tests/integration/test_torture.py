"""`saga torture`, short: about 200 sagas under every kind of fault against real servers, its invariants held."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def test_a_short_torture_run_keeps_every_invariant(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "saga.entrypoints.cli",
            "torture",
            "--seed",
            "11",
            "--sagas",
            "200",
            "--seconds",
            "50",
            "--postgres-restarts",
            "1",
            "--broker-pauses",
            "1",
            "--poison",
            "10",
            "--drain-seconds",
            "60",
            "--workdir",
            str(tmp_path),
            "--report",
            str(report_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert report_path.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(report_path.read_text())
    failed = [check for check in report["checks"] if not check["ok"]]
    assert not failed, json.dumps(failed, indent=2)
    assert run.returncode == 0, run.stdout[-3000:]
    # The faults happened: the invariants were held under them, not beside them.
    faults = report["faults"]
    assert faults["orchestrator_kills"] >= 3
    assert faults["postgres_restarts"] == 1 and faults["broker_pauses"] == 1
    assert faults["poison_records"] == 10
    assert report["ambiguous_commits_cut"] >= 1
    assert report["cancels"] >= 1
    assert report["sagas"] >= 200 and report["orders_without_saga"] == 0
    assert report["drained"], "sagas still moving when the drain time ran out"
    # Everything it started was stopped: nothing listens on its ports or runs from its folder.
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True, check=False)
    assert leftover.stdout.strip() == "", leftover.stdout
