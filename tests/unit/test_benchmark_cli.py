"""The benchmark's command line and report.

- On a fresh clone, nothing to compare and no py-spy are said in one line.
- The Targets block marks each target met or MISS from the figures of one run, beside that
  run's limits; a figure the run lacks (an older file, a configuration not run) is n/a.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from benchmarks import report
from benchmarks.client import percentiles, summary_ms

ROOT = Path(__file__).resolve().parents[2]
RUN = Path(__file__).with_name("benchmark_run.json")
"""A real `make bench BENCH_ARGS=--quick` run (2 cores, no scale checks), trimmed of process
details the report does not read."""
NOTHING_TO_RUN = ["--configs", "none", "--scale", "none", "--no-limits"]


def benchmark(tmp_path: Path, *args: str, without_py_spy: bool = False) -> subprocess.CompletedProcess[str]:
    patch = "import benchmarks.profiling as p; p.py_spy = lambda: None; " if without_py_spy else ""
    code = f"{patch}from benchmarks.run import main; raise SystemExit(main({list(args)!r}))"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_compare_on_a_fresh_clone_says_there_is_nothing_to_compare(tmp_path: Path) -> None:
    result = benchmark(
        tmp_path, *NOTHING_TO_RUN, "--results", "bench-results", "--compare", "bench-results/latest.json"
    )

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "benchmark: nothing to compare: bench-results/latest.json does not exist" in result.stderr


def test_compare_only_and_show_refuse_a_missing_or_foreign_file_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.json").write_text('["not", "a", "run"]')
    for args in (["--compare-only", "missing.json", "notes.json"], ["--show", "notes.json"]):
        result = benchmark(tmp_path, *args)
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("benchmark: nothing to compare: ")


def test_profile_without_py_spy_says_so(tmp_path: Path) -> None:
    result = benchmark(tmp_path, *NOTHING_TO_RUN, "--results", "out", "--profile", without_py_spy=True)

    assert result.returncode == 0, result.stderr
    assert "--profile needs py-spy, which is not installed" in result.stderr


def test_percentiles_interpolate_between_closest_ranks() -> None:
    assert percentiles([], 50, 95) == [None, None]
    assert percentiles([7.0], 50, 99) == [7.0, 7.0]
    assert percentiles([float(n) for n in range(1, 101)], 50, 95, 99) == [50.5, 95.05, 99.01]
    assert summary_ms([0.001, 0.003])["median"] == 2.0


def real_run() -> dict[str, Any]:
    results: dict[str, Any] = json.loads(RUN.read_text())
    return results


def verdict(results: dict[str, Any], key: str) -> report.Verdict:
    return next(v for v in report.verdicts(results) if v.key == key)


def test_a_real_run_has_a_figure_for_every_target_it_measured() -> None:
    found = report.verdicts(real_run())

    assert [v.key for v in found] == list(report.TARGETS)
    unmeasured = [v.key for v in found if v.met is None]
    # That run skipped the scale checks and nothing else.
    assert unmeasured == ["inflight_rss_delta_mb", "paging_first_page_p95_ms", "paging_deep_page_p95_ms"]
    kafka = verdict(real_run(), "kafka_sagas_per_second")
    assert (kafka.shown, kafka.met) == ("36.6", False)
    assert "DB commits 1,192/s (PG 8 conn), CPU ceiling 47.6/s" in kafka.limit
    floor = verdict(real_run(), "kafka_one_saga_over_floor")
    assert (floor.shown, floor.met) == ("2.39×", False)
    assert "50.6 ms (5 × 10.13 ms step round trip)" in floor.limit
    workers = verdict(real_run(), "kafka_workers_over_kafka")
    assert (workers.shown, workers.met) == ("1.45×", True)


def _set(results: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split("/")
    for key in parents:
        results = results.setdefault(key, {})
    results[last] = value


def figures(*pairs: tuple[str, Any]) -> dict[str, Any]:
    results: dict[str, Any] = {"meta": {"cpus": 2}}
    for path, value in pairs:
        _set(results, path, value)
    return results


def twice(completed: int, resent: int) -> dict[str, Any]:
    check = {
        "completed": completed,
        "sagas_with_an_event_twice": 0,
        "sagas_with_other_event_sequences": 0,
        "sagas_with_commands_resent_or_out_of_order": resent,
    }
    return figures(("configs/kafka-workers/saturation/history_check", check))


SAT = "configs/{}/saturation/"
BOUNDARIES: list[tuple[str, Callable[[float], dict[str, Any]], float, float]] = [
    # (target, results with one figure, a figure that meets it, the nearest that misses)
    ("kafka_sagas_per_second", lambda v: figures((SAT.format("kafka") + "sagas_per_second", v)), 250, 249.9),
    ("kafka_machine_cpu_ms_per_saga", lambda v: figures((SAT.format("kafka") + "machine_cpu_ms_per_saga", v)), 7, 7.01),
    (
        "kafka_orchestrator_cpu_ms_per_saga",
        lambda v: figures((SAT.format("kafka") + "orchestrator_cpu_ms_per_saga", v)),
        3,
        3.01,
    ),
    ("kafka_db_commits_per_saga", lambda v: figures((SAT.format("kafka") + "db_commits_per_saga", v)), 2, 2.01),
    ("http_db_commits_per_saga", lambda v: figures((SAT.format("http") + "db_commits_per_saga", v)), 2, 2.01),
    (
        "kafka_one_saga_over_floor",
        lambda v: figures(
            ("limits/kafka_step_round_trip_ms/median", 10.0), ("configs/kafka/alone/client_ms/median", v)
        ),
        60.0,
        60.1,
    ),
    (
        "kafka_one_saga_orchestrator_ms",
        lambda v: figures(("configs/kafka/alone/breakdown/orchestrator_ms/median", v)),
        4.99,
        5,
    ),
    ("http_sagas_per_second", lambda v: figures((SAT.format("http") + "sagas_per_second", v)), 250, 249.9),
    ("embedded_sagas_per_second", lambda v: figures((SAT.format("embedded") + "sagas_per_second", v)), 1000, 999),
    ("embedded_one_saga_median_ms", lambda v: figures(("configs/embedded/alone/client_ms/median", v)), 4.99, 5),
    (
        "kafka_workers_over_kafka",
        lambda v: figures(
            (SAT.format("kafka") + "sagas_per_second", 100.0), (SAT.format("kafka-workers") + "sagas_per_second", v)
        ),
        130,
        129.9,
    ),
    ("kafka_workers_processed_twice", lambda v: twice(10, int(v)), 0, 1),
    (
        "kafka_paced_over_one_saga",
        lambda v: figures(("configs/kafka/alone/client_ms/median", 50.0), ("configs/kafka/paced/latency_ms/median", v)),
        99.9,
        100,
    ),
    ("inflight_rss_delta_mb", lambda v: figures(("scale/inflight/rss_delta_mb", v)), 50, 50.1),
    ("paging_first_page_p95_ms", lambda v: figures(("scale/paging/first_page_ms/p95", v)), 49.9, 50),
    ("paging_deep_page_p95_ms", lambda v: figures(("scale/paging/deep_page_ms/p95", v)), 49.9, 50),
]


def test_every_target_has_its_boundary_checked() -> None:
    assert [key for key, *_ in BOUNDARIES] == list(report.TARGETS)


@pytest.mark.parametrize(("key", "results", "meets", "misses"), BOUNDARIES, ids=[b[0] for b in BOUNDARIES])
def test_a_target_is_met_at_its_goal_and_missed_just_past_it(
    key: str, results: Callable[[float], dict[str, Any]], meets: float, misses: float
) -> None:
    assert verdict(results(meets), key).met is True
    assert verdict(results(misses), key).met is False
    # Only the figures given: every other target is not measured (the workers' ratio needs kafka's sagas/s).
    fed = {key, "kafka_sagas_per_second"} if key == "kafka_workers_over_kafka" else {key}
    others = [v.key for v in report.verdicts(results(meets)) if v.key not in fed and v.met is not None]
    assert others == []


def test_the_table_prints_the_verdict_figure_goal_and_limit_on_one_line() -> None:
    results = figures(
        (SAT.format("kafka") + "sagas_per_second", 260.0),
        (SAT.format("kafka") + "cpu_ceiling_sagas_per_second", 300.0),
        (SAT.format("kafka") + "db_commits_per_saga", 4.0),
        ("limits/pg_commits_per_second_8", 12_000.0),
        ("limits/pg_commits_per_second_1", 4_000.0),
        (SAT.format("http") + "sagas_per_second", 120.0),
    )

    lines = report.table(results).splitlines()

    def line(label: str) -> str:
        return next(text for text in lines if label in text)

    kafka = line("kafka: sagas/s at saturation")
    assert kafka.split()[:2] == ["met", "kafka:"]
    assert "260   goal >= 250" in kafka
    assert "DB commits 3,000/s (PG 8 conn), CPU ceiling 300/s" in kafka
    assert line("http: sagas/s at saturation").split()[0] == "MISS"
    commits = line("kafka: DB commits/saga at saturation")
    assert commits.split()[0] == "MISS"
    assert "allow 48.0 (8 conn), 16.0 (1 conn)" in commits
    assert line("embedded: sagas/s at saturation").split()[0] == "n/a"
    assert line(" met, ").strip() == "1 met, 2 missed, 13 not measured in this run"


def test_throughput_with_sagas_not_completed_is_a_miss() -> None:
    results = figures((SAT.format("kafka") + "sagas_per_second", 300.0), (SAT.format("kafka") + "not_completed", 2))

    found = verdict(results, "kafka_sagas_per_second")

    assert found.met is False
    assert found.limit.startswith("2 not completed")


def test_no_saga_completed_by_the_workers_is_not_shown_processed_once() -> None:
    assert verdict(twice(0, 0), "kafka_workers_processed_twice").met is None


def test_a_scale_check_at_a_smaller_size_says_so() -> None:
    results = figures(("scale/inflight/rss_delta_mb", 4.0), ("scale/inflight/sagas", 1_000))

    assert verdict(results, "inflight_rss_delta_mb").limit == "1,000 sagas, the target's size is 10,000"


def test_an_older_file_without_the_newer_figures_still_prints_and_compares() -> None:
    old = real_run()
    del old["limits"]["kafka_step_round_trip_ms"]
    del old["configs"]["http"]
    for config in old["configs"].values():
        config["alone"].pop("breakdown")
    old.pop("scale")

    assert verdict(old, "kafka_one_saga_over_floor").met is None
    assert verdict(old, "http_sagas_per_second").met is None
    assert "n/a  kafka: one saga median ÷ 5-step floor" in report.table(old)
    compared = report.compare(old, real_run()).splitlines()
    floor = next(text for text in compared if "kafka: one saga median ÷ 5-step floor" in text)
    assert floor.split()[-7:] == ["2.39×", "n/a", "->", "MISS", "goal", "<=", "1.2×"]


def test_the_json_file_carries_the_verdicts_and_latest_json_the_same_run(tmp_path: Path) -> None:
    results = real_run()
    before = copy.deepcopy(results)

    path = report.write(results, tmp_path / "bench-results", "20261208T000000Z")

    assert results == before
    written = json.loads(path.read_text())
    assert json.loads((tmp_path / "bench-results" / "latest.json").read_text()) == written
    assert {k: v for k, v in written.items() if k != "targets"} == before
    assert [t["key"] for t in written["targets"]] == list(report.TARGETS)
    kafka = written["targets"][0]
    assert (kafka["figure"], kafka["goal"], kafka["met"]) == (pytest.approx(36.6, abs=0.05), ">= 250", False)


def test_show_prints_every_target_of_a_saved_run(tmp_path: Path) -> None:
    result = benchmark(tmp_path, "--show", str(RUN))

    assert result.returncode == 0, result.stderr
    block = result.stdout.split("\nTargets (figure and limits from this run)\n", 1)[1].splitlines()
    assert len(block) == len(report.TARGETS) + 1
    assert block[-1].strip() == "2 met, 11 missed, 3 not measured in this run"
