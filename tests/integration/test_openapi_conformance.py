"""The OpenAPI document against the live app: schemathesis runs every check over every
operation of a real `saga serve` (a few dozen generated examples each, plus its coverage
and stateful phases), so the document says exactly what the API takes and answers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from tests.support.servers import saga_process

CONFIG = Path(__file__).parents[1] / "schemathesis" / "schemathesis.toml"
EXAMPLES_PER_OPERATION = 20
SEED = "20261128"
"""Fixed, so that a failure is reproduced by running the test again."""


def test_schemathesis_finds_nothing_with_every_check(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "memory://", "SAGA_TRANSPORT": "memory"}
    with saga_process(["serve"], env, tmp_path / "server.log") as base:
        operations = requests.get(f"{base}/openapi.json", timeout=5).json()["paths"]
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "--no-color",
                "--config-file",
                str(CONFIG),
                "run",
                f"{base}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                str(EXAMPLES_PER_OPERATION),
                "--seed",
                SEED,
                "--workers",
                "1",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
        )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-20_000:]
    selected = re.search(r"Selected: (\d+)/(\d+)", report)
    assert selected is not None and selected[1] == selected[2], report[-5_000:]
    assert int(selected[1]) >= len(operations) - 1  # every route but the document itself
    assert re.search(r"(\d+) generated, \1 passed", report), report[-5_000:]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/api/events", "/api/sagas/{saga_id}/retry"])
def test_the_document_lists_every_route(path: str) -> None:
    from saga.entrypoints.openapi import openapi_document

    assert path in openapi_document()["paths"]
