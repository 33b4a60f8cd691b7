"""`saga simulate --profile platform`: its knobs from the command line, and the options it refuses."""

from __future__ import annotations

from datetime import timedelta

import pytest

from saga.entrypoints.cli import _parser, main
from saga.entrypoints.config import ConfigError
from saga.entrypoints.simulate_platform import platform_from_args


def test_the_knobs_come_from_repeatable_options_with_their_rates() -> None:
    args = _parser().parse_args(
        [
            "simulate",
            "--profile",
            "platform",
            "--slow",
            "create_order",
            "--slow",
            "payment",
            "--slow-ms",
            "45000",
            "--slow-rate",
            "0.1",
            "--twice",
            "order",
            "--silent",
            "timer",
            "--fail",
            "authorize_payment",
            "--fail-rate",
            "0.2",
            "--seed",
            "7",
        ]
    )
    knobs = platform_from_args(args).knobs
    assert knobs.slow.targets == {"create_order", "payment"} and knobs.slow.rate == 0.1
    assert knobs.slow_by == timedelta(seconds=45)
    assert knobs.twice.targets == {"order"} and knobs.twice.rate == 1.0
    assert knobs.silent.targets == {"timer"}
    assert knobs.fail.targets == {"authorize_payment"} and knobs.fail.rate == 0.2
    assert knobs.seed == 7


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--fail-step", "CREATE_ORDER"], "not available with --profile platform: --fail-step"),
        (["--duplicate"], "--duplicate"),
        (["--slow", "CREATE_ORDER"], "unknown service or command CREATE_ORDER"),
        (["--twice", "order", "--twice-rate", "2"], "rate must be between 0 and 1"),
        (["--slow-ms", "-1"], "--slow-ms must not be negative"),
    ],
)
def test_options_the_platform_profile_does_not_take_are_refused(options: list[str], message: str) -> None:
    args = _parser().parse_args(["simulate", "--profile", "platform", *options])
    with pytest.raises(ConfigError, match=message):
        platform_from_args(args)


def test_the_command_line_says_why_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--transport", "kafka", "--profile", "platform", "--silent", "nobody"]) == 2
    assert "unknown service or command nobody" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "environment", "expected"),
    [
        ([], {}, "http://127.0.0.1:3101"),
        ([], {"PORT": "4200"}, "http://127.0.0.1:4200"),
        (["--orchestrator-url", "http://orchestrator:8080"], {}, "http://orchestrator:8080"),
    ],
)
def test_the_platform_profile_over_http_posts_its_late_replies_to_the_orchestrator_by_default(
    options: list[str], environment: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[str] = []

    def run(host: str, port: int, args: object, orchestrator_url: str, *rest: object) -> None:
        started.append(orchestrator_url)

    monkeypatch.setattr("saga.entrypoints.simulate_platform.run_platform_http_simulator", run)
    for name in ("PORT", "SAGA_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    assert main(["simulate", "--profile", "platform", "--port", "3192", *options]) == 0

    assert started == [expected]
