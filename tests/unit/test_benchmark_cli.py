"""The benchmark's command line on a fresh clone: nothing to compare and no py-spy are said in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.client import percentiles, summary_ms

ROOT = Path(__file__).resolve().parents[2]
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
