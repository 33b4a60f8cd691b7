"""`saga serve` says at start which endpoints anyone who reaches it could use: bound beyond
loopback without SAGA_EVENTS_TOKEN, anyone may post participant events; without
SAGA_ADMIN_TOKEN, cancel and retry sagas (docs/operations.md, "Securing the API")."""

from __future__ import annotations

import threading

import pytest

from saga.entrypoints import cli
from saga.entrypoints.config import Settings

ALL_OPEN = {"DATABASE_URL": "memory://", "SAGA_TRANSPORT": "memory"}


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_is_not_warned_about(host: str, caplog: pytest.LogCaptureFixture) -> None:
    cli.warn_about_open_endpoints(host, Settings.from_env(ALL_OPEN))

    assert warnings(caplog) == []


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "saga.internal", ""])
def test_beyond_loopback_each_endpoint_without_its_token_is_warned_about(
    host: str, caplog: pytest.LogCaptureFixture
) -> None:
    cli.warn_about_open_endpoints(host, Settings.from_env(ALL_OPEN))

    events, admin = warnings(caplog)
    assert events.startswith(f"listening on {host} without SAGA_EVENTS_TOKEN: anyone who reaches this port")
    assert "POST /api/events" in events
    assert admin.startswith(f"listening on {host} without SAGA_ADMIN_TOKEN")


def test_with_both_tokens_nothing_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings.from_env({**ALL_OPEN, "SAGA_EVENTS_TOKEN": "e", "SAGA_ADMIN_TOKEN": "a"})

    cli.warn_about_open_endpoints("0.0.0.0", settings)

    assert warnings(caplog) == []


def test_with_the_events_token_only_the_admin_endpoints_are_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    cli.warn_about_open_endpoints("0.0.0.0", Settings.from_env({**ALL_OPEN, "SAGA_EVENTS_TOKEN": "e"}))

    [admin] = warnings(caplog)
    assert "SAGA_ADMIN_TOKEN" in admin


def test_saga_serve_warns_at_start_when_it_binds_beyond_loopback_without_tokens(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name, value in ALL_OPEN.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SAGA_EVENTS_TOKEN", raising=False)
    monkeypatch.delenv("SAGA_ADMIN_TOKEN", raising=False)
    bound: list[str] = []
    monkeypatch.setattr(cli, "_stop_on_signals", threading.Event)
    monkeypatch.setattr(cli, "_serve_http", lambda app, host, port, settings: bound.append(host))
    monkeypatch.setattr(cli, "configure_logging", lambda level, format_: None)

    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "3999"]) == 0

    assert bound == ["0.0.0.0"]
    assert [message.split(":")[0] for message in warnings(caplog) if "listening on" in message] == [
        "listening on 0.0.0.0 without SAGA_EVENTS_TOKEN",
        "listening on 0.0.0.0 without SAGA_ADMIN_TOKEN",
    ]
