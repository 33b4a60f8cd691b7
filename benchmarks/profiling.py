"""py-spy profiles of orchestrator processes during a saturation run: py-spy's flame graph, and a text summary.

Two py-spy recorders sample each process: one writes py-spy's own flame graph SVG
(`--format flamegraph`), the other collapsed stacks (`--format raw`, one
"frame;frame;frame count" per line, thread names included), from which this module
writes the functions taking most samples (inclusive and self), by thread, operation
and component.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    if local.exists():
        return str(local)
    return shutil.which("py-spy")


@dataclass
class Recording:
    name: str
    pid: int
    raw: Path
    svg: Path
    processes: list[subprocess.Popen[bytes]]


class Profiler:
    def __init__(self, folder: Path, prefix: str, rate: int = 100, gil: bool = False) -> None:
        self._folder = folder
        self._prefix = prefix
        self._rate = rate
        self._gil = gil
        self._recordings: list[Recording] = []
        self.binary = py_spy()

    def start(self, name: str, pid: int) -> None:
        binary = self.binary
        if binary is None:
            return
        self._folder.mkdir(parents=True, exist_ok=True)
        raw = self._folder / f"{self._prefix}-{name}.txt"
        svg = raw.with_suffix(".svg")
        processes = [self._record(binary, pid, "raw", raw), self._record(binary, pid, "flamegraph", svg)]
        self._recordings.append(Recording(name, pid, raw, svg, processes))

    def _record(self, binary: str, pid: int, output_format: str, output: Path) -> subprocess.Popen[bytes]:
        argv = [
            binary,
            "record",
            "--pid",
            str(pid),
            "--format",
            output_format,
            "--threads",
            "--rate",
            str(self._rate),
            "--output",
            str(output),
            "--nonblocking",
        ]
        if self._gil:
            argv.append("--gil")
        with output.with_suffix(output.suffix + ".log").open("wb") as log:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> list[dict[str, Any]]:
        """Stops every recording (SIGINT makes py-spy write its file); returns a summary of each."""
        summaries: list[dict[str, Any]] = []
        processes = [process for recording in self._recordings for process in recording.processes]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for recording in self._recordings:
            if not recording.raw.exists():
                summaries.append(
                    {
                        "name": recording.name,
                        "error": "py-spy wrote nothing",
                        "log": str(recording.raw.with_suffix(".txt.log")),
                    }
                )
                continue
            stacks = read_collapsed(recording.raw)
            text = recording.raw.with_name(recording.raw.stem + "-top.txt")
            report = top_report(stacks)
            text.write_text(report)
            summaries.append(
                {
                    "name": recording.name,
                    "samples": sum(stacks.values()),
                    "raw": str(recording.raw),
                    "svg": str(recording.svg) if recording.svg.exists() else None,
                    "top": str(text),
                }
            )
        self._recordings.clear()
        return summaries

    def kill(self) -> None:
        for recording in self._recordings:
            for process in recording.processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()


def read_collapsed(path: Path) -> Counter[str]:
    stacks: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] += int(count)
    return stacks


FRAME_LOCATION = re.compile(r" \((?P<file>[^()]*?):\d+\)$")


def frame_function(frame: str) -> str:
    """`function (path/to/file.py:123)` -> `function (file.py)`: lines merged, so a function counts once."""
    match = FRAME_LOCATION.search(frame)
    if not match:
        return frame
    file = match.group("file")
    short = "/".join(file.split("/")[-2:])
    return frame[: match.start()] + f" ({short})"


DRIVER_CALLS = {"do_execute", "do_executemany", "do_commit", "do_rollback", "do_begin", "do_ping"}
COMPONENTS: list[tuple[str, tuple[str, ...]]] = [
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("DB driver", ("psycopg2/", "sqlite3/")),
    ("kafka-python", ("kafka/",)),
    ("json", ("json/",)),
    ("saga code", ("saga/",)),
    ("HTTP server, asyncio", ("starlette/", "uvicorn/", "anyio/", "asyncio/", "h11/", "httptools/")),
    ("HTTP client", ("requests/", "urllib3/", "http/client")),
    ("threading, queues", ("threading.py", "queue.py")),
    ("selectors, sockets", ("selectors.py", "socket.py", "ssl.py")),
]
OPERATIONS: list[tuple[str, tuple[str, ...]]] = [
    ("HTTP plumbing (uvicorn, starlette, event loop)", ("uvicorn/", "starlette/", "asyncio/", "anyio/")),
    ("Kafka consumer poll/fetch", ("KafkaConsumer.poll", "KafkaRecordConsumer.poll", "Fetcher.")),
    ("Kafka offset commit", ("KafkaRecordConsumer.commit", "KafkaConsumer.commit")),
    ("Kafka producer network thread", ("Sender.run",)),
    ("Kafka client IO thread", ("NetworkSelector.run_forever",)),
    (
        "relay: publish",
        ("CommandPublisher.publish", "KafkaCommandPublisher.", "HttpCommandPublisher.", "InMemoryTransport."),
    ),
    ("relay: outbox bookkeeping", ("OutboxRelay.",)),
    ("POST /api/orders: start", ("SagaOrchestrator.start",)),
    ("GET /api/sagas: read", ("SagaOrchestrator.get ", "SagaOrchestrator.page", "saga_json")),
    ("event: decode", ("decode_event", "parse_event")),
    ("event: apply (load, decide, store)", ("SagaOrchestrator.apply_event", "SagaOrchestrator._apply")),
    ("deadline sweep", ("sweep_deadlines",)),
    ("retention", ("Retention", "prune")),
    ("simulated participant", ("SimulatedParticipants.", "KafkaParticipantSimulator._answer", "HttpParticipants.")),
]


def _component(leaf: str) -> str:
    if leaf.split(" (")[0].rsplit(".", 1)[-1] in DRIVER_CALLS:
        return "DB driver"
    for name, markers in COMPONENTS:
        if any(marker in leaf for marker in markers):
            return name
    return "other"


def _operation(frames: list[str]) -> str:
    found = "other"
    for frame in frames:  # root to leaf: the innermost match wins
        for name, markers in OPERATIONS:
            if any(marker in frame for marker in markers):
                found = name
                break
    return found


def top_report(stacks: Counter[str], limit: int = 45) -> str:
    total = sum(stacks.values()) or 1
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    components: Counter[str] = Counter()
    operations: Counter[str] = Counter()
    for stack, count in stacks.items():
        frames = stack.split(";")
        components[_component(frames[-1])] += count
        operations[_operation(frames)] += count
        if frames and frames[0].startswith(("thread ", "process ")):
            threads[frames[0]] += count
        functions = [frame_function(f) for f in frames]
        for function in set(functions):
            inclusive[function] += count
        self_time[functions[-1]] += count
    lines = [f"{total} samples (active threads only)", "", "by thread:"]
    lines += [f"  {100 * c / total:5.1f}%  {name}" for name, c in threads.most_common(20)]
    lines += ["", "by operation (innermost saga operation on the stack):"]
    lines += [f"  {100 * c / total:5.1f}%  {name}" for name, c in operations.most_common()]
    lines += [
        "",
        "by component (the innermost frame's package; 'DB driver' includes SQLAlchemy's cursor.execute/commit calls):",
    ]
    lines += [f"  {100 * c / total:5.1f}%  {name}" for name, c in components.most_common()]
    lines += ["", "inclusive (the function or anything it calls):"]
    lines += [f"  {100 * c / total:5.1f}%  {name}" for name, c in inclusive.most_common(limit)]
    lines += ["", "self (the innermost frame):"]
    lines += [f"  {100 * c / total:5.1f}%  {name}" for name, c in self_time.most_common(limit)]
    return "\n".join(lines) + "\n"
