"""The container image and the compose file, read as files (no Docker engine needed)."""

from __future__ import annotations

import re
from pathlib import Path

from saga.entrypoints.config import Environment

ROOT = Path(__file__).resolve().parents[2]


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile)
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), " ".join(rest.split())))
    return pairs


def test_the_image_runs_without_database_url_as_uid_10001_in_a_directory_it_may_write() -> None:
    steps = instructions((ROOT / "Dockerfile").read_text())
    runs = " && ".join(arguments for keyword, arguments in steps if keyword == "RUN")
    user = [arguments for keyword, arguments in steps if keyword == "USER"][-1]
    workdir = [arguments for keyword, arguments in steps if keyword == "WORKDIR"][-1]

    assert "useradd" in runs and "--uid 10001 saga" in runs
    assert user in ("10001", "saga", "10001:10001", "saga:saga")
    # Without DATABASE_URL the default SQLite file is relative to the working directory.
    assert Environment.model_fields["database_url"].default == "sqlite:///saga.db"
    assert not any(keyword == "ENV" and "DATABASE_URL" in arguments for keyword, arguments in steps)
    assert re.search(rf"chown (-R )?saga(:saga)? {re.escape(workdir)}(\s|$)", runs), (workdir, runs)
    assert steps.index(("USER", user)) < steps.index(("WORKDIR", workdir))  # WORKDIR after USER keeps it


def compose_environment(compose: str, service: str) -> dict[str, str]:
    """The `environment:` mapping of one service, read by indentation (the file is plain block YAML)."""
    block = re.search(rf"^  {service}:\n((?:    .*\n|\s*\n)+)", compose, re.MULTILINE)
    assert block is not None, service
    environment = re.search(r"^    environment:\n((?:      .*\n)+)", block.group(1), re.MULTILINE)
    assert environment is not None, service
    pairs = {}
    for line in environment.group(1).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition(":")
            pairs[name.strip()] = value.strip()
    return pairs


def test_compose_uses_the_session_timeout_recommended_for_apache_kafka() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    for service in ("orchestrator", "simulator"):
        environment = compose_environment(compose, service)
        assert environment.get("SAGA_KAFKA_SESSION_TIMEOUT_MS") == "45000", (service, environment)
        assert {name.lower() for name in environment} <= set(Environment.model_fields), service
