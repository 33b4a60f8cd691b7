"""SAGA_LOG_FORMAT=json: every line `saga serve` writes is one JSON object, and each line about a
saga carries its saga id as a field; the default stays text for a person."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests
from tests.support.scenarios import SEED_ORDER, start_order
from tests.support.servers import saga_process, wait_for_status


def run_one_failing_saga(tmp_path: Path, log_format: str | None) -> tuple[str, str]:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'saga.db'}",
        "SAGA_TRANSPORT": "memory",
        "SAGA_LOG_LEVEL": "DEBUG",
        # Fails after payment: two compensations, so the run has many lines.
        "SAGA_SIMULATE_FAIL_STEP": "UPDATE_ORDER_STATUS",
        **({"SAGA_LOG_FORMAT": log_format} if log_format else {}),
    }
    log = tmp_path / "serve.log"
    with saga_process(["serve"], env, log) as base:
        saga_id = start_order(base, SEED_ORDER)
        wait_for_status(base, saga_id, {"FAILED"})
        assert requests.get(f"{base}/metrics", timeout=5).status_code == 200
    return saga_id, log.read_text()


def test_every_json_line_parses_and_each_line_of_the_saga_carries_its_id(tmp_path: Path) -> None:
    saga_id, text = run_one_failing_saga(tmp_path, "json")
    lines: list[dict[str, Any]] = [json.loads(line) for line in text.splitlines()]  # every line parses

    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
        assert line["time"].endswith("+00:00") and line["level"] in ("DEBUG", "INFO", "WARNING", "ERROR")
    run = [line for line in lines if line["logger"].startswith("saga.") and "saga" in line["message"]]
    # started, 4 steps and 2 compensations sent, 6 replies applied, ended
    assert len(run) >= 14, [line["message"] for line in run]
    for line in run:
        assert line.get("saga_id") == saga_id, line
        assert line.get("message_id"), line
    assert all(saga_id not in line["message"] or line.get("saga_id") == saga_id for line in lines)
    steps = {line.get("step") for line in run}
    assert {"CREATE_ORDER", "UPDATE_ORDER_STATUS"} <= steps
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # the server's own lines too


def test_the_default_log_is_text_for_a_person(tmp_path: Path) -> None:
    saga_id, text = run_one_failing_saga(tmp_path, None)
    assert not text.lstrip().startswith("{")
    assert f"saga {saga_id} ended FAILED" in text
