"""What the benchmark runs: each configuration end to end, the machine's limits, and the scale checks."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.kafka import KafkaTestSetup, new_setup
from tests.support.servers import free_port

from benchmarks import limits
from benchmarks.client import Api, SagaDb, check_histories, post_many, run_one, run_one_unobserved, summary_ms
from benchmarks.infra import (
    CLOCK_TICKS,
    Kafka,
    Postgres,
    Proc,
    cpu_seconds,
    machine_jiffies,
    saga_argv,
    spawn,
    stop_process,
    wait_group,
    wait_http,
    wait_log,
)
from benchmarks.profiling import Profiler

CONFIGS = ("embedded", "kafka", "http", "kafka-workers")
MB = 1024.0


@dataclass
class Sizes:
    sagas: int
    latency_samples: int
    warmup: int
    inflight: int
    finished: int
    paging_requests: int
    rtt_samples: int
    limit_seconds: float
    paced_seconds: float
    alone_budget_seconds: float = 180.0
    idle_seconds: float = 5.0


@dataclass
class Context:
    sizes: Sizes
    scratch: Path
    results: Path
    stamp: str
    pg: Postgres | None
    kafka: Kafka | None
    client_threads: int
    poll_interval: float
    timeout: float
    fetch_wait_ms: int
    step_deadline_seconds: float
    extra_env: dict[str, str]
    profile: bool
    profile_gil: bool
    log: Callable[[str], None]
    paced_fraction: float = 0.7

    def orchestrator_env(self, **values: str) -> dict[str, str]:
        return {
            "SAGA_LOG_LEVEL": "WARNING",
            "SAGA_STEP_DEADLINE_SECONDS": str(self.step_deadline_seconds),
            **values,
            **self.extra_env,
        }

    def kafka_setup(self) -> KafkaTestSetup:
        assert self.kafka is not None
        return new_setup(self.kafka.bootstrap)

    def kafka_env(self, setup: KafkaTestSetup, database_url: str, **values: str) -> dict[str, str]:
        """The tests' fast client settings (session 2000 ms, heartbeat 500 ms), this run's fetch wait, fresh topics and groups."""
        return setup.env(
            database_url,
            SAGA_KAFKA_FETCH_MAX_WAIT_MS=str(self.fetch_wait_ms),
            **self.orchestrator_env(**values),
        )


# ------------------------------------------------------------- a system


@dataclass
class System:
    """The processes of one configuration, and how to read its database."""

    name: str
    api: Api
    db: SagaDb
    database: str | None
    """PostgreSQL database name, for pg_stat_database."""
    orchestrators: list[Proc]
    simulator: Proc | None
    others: list[Proc] = field(default_factory=list)
    kafka_setup: KafkaTestSetup | None = None
    env: dict[str, str] = field(default_factory=dict)

    def measured(self) -> list[Proc]:
        return [*self.orchestrators, *([self.simulator] if self.simulator else []), *self.others]


def _stop_all(procs: list[Proc]) -> None:
    for proc in procs:
        if proc.popen is not None:
            stop_process(proc.popen)


def start_system(ctx: Context, name: str, stack: ExitStack) -> System:
    """Starts the servers of one configuration; everything started is stopped when `stack` closes."""
    folder = ctx.scratch / name
    folder.mkdir(parents=True, exist_ok=True)
    started: list[Proc] = []
    stack.callback(_stop_all, started)
    others = [p for p in (ctx.pg.proc() if ctx.pg else None, ctx.kafka.proc if ctx.kafka else None) if p is not None]
    simulator: Proc | None = None
    setup: KafkaTestSetup | None = None
    database: str | None = None

    if name == "embedded":
        db_path = folder / "embedded.db"
        env = ctx.orchestrator_env(DATABASE_URL=f"sqlite:///{db_path}", SAGA_TRANSPORT="memory")
        db = SagaDb("sqlite", str(db_path))
        others = []
    else:
        assert ctx.pg is not None, "PostgreSQL is needed"
        database = ctx.pg.new_database(f"bench_{name.replace('-', '_')}")
        url = ctx.pg.url(database)
        db = SagaDb("postgres", ctx.pg.dsn(database))
        if name in ("kafka", "kafka-workers"):
            assert ctx.kafka is not None, "Kafka is needed"
            setup = ctx.kafka_setup()
            env = ctx.kafka_env(setup, url)
            # The simulator logs at INFO: its only INFO lines are about starting.
            simulator = spawn(
                "simulator",
                "simulator",
                saga_argv(*setup.simulator_args()),
                {**env, "SAGA_LOG_LEVEL": "INFO"},
                folder / "simulator.log",
            )
            started.append(simulator)
        elif name == "http":
            port = free_port()
            sim_url = f"http://127.0.0.1:{port}"
            simulator = spawn(
                "simulator",
                "simulator",
                saga_argv("simulate", "--transport", "http", "--port", str(port)),
                {"SAGA_TRANSPORT": "memory", "SAGA_LOG_LEVEL": "WARNING"},
                folder / "simulator.log",
                sim_url,
            )
            started.append(simulator)
            wait_http(simulator)
            env = ctx.orchestrator_env(
                DATABASE_URL=url,
                SAGA_TRANSPORT="http",
                ORDER_SERVICE_URL=sim_url,
                USER_SERVICE_URL=sim_url,
                PAYMENT_SERVICE_URL=sim_url,
                SCHEDULER_SERVICE_URL=sim_url,
            )
        else:
            raise ValueError(f"unknown configuration {name}")
    stack.callback(db.close)

    port = free_port()
    serve_args = ["serve", "--port", str(port)] + (["--no-worker"] if name == "kafka-workers" else [])
    api_proc = spawn(
        "serve", "orchestrator", saga_argv(*serve_args), env, folder / "serve.log", f"http://127.0.0.1:{port}"
    )
    started.append(api_proc)
    wait_http(api_proc)
    orchestrators = [api_proc]
    if name == "kafka-workers":
        for index in (1, 2):
            worker = spawn(
                f"worker-{index}",
                "orchestrator",
                saga_argv("worker", "--no-migrate"),
                env,
                folder / f"worker-{index}.log",
            )
            started.append(worker)
            orchestrators.append(worker)
    api = Api(api_proc.base_url or "")
    stack.callback(api.close)
    system = System(name, api, db, database, orchestrators, simulator, others, setup, env)
    if setup is not None and ctx.kafka is not None:
        assert simulator is not None
        wait_log(simulator, "simulator ready")
        per_process = int(env.get("SAGA_KAFKA_CONSUMERS", "1"))  # event consumers in each process
        members = per_process * (2 if name == "kafka-workers" else 1)
        if not wait_group(ctx.kafka.bootstrap, setup.orchestrator_group, members):
            ctx.log("  (the broker does not describe groups; relying on the warm-up)")
    return system


# ----------------------------------------------------------- snapshots


@dataclass
class Snapshot:
    at: float
    cpu: dict[str, float]
    client_cpu: float
    jiffies: tuple[int, int]
    counters: dict[str, dict[str, int]]


def snapshot(system: System) -> Snapshot:
    counters = {}
    for proc in system.orchestrators:
        if proc.base_url:
            api = Api(proc.base_url)
            counters[proc.name] = api.counters()
            api.close()
    return Snapshot(
        time.perf_counter(),
        {proc.name: proc.cpu() for proc in system.measured()},
        cpu_seconds(os.getpid()),
        machine_jiffies(),
        counters,
    )


def counter_deltas(before: Snapshot, after: Snapshot) -> dict[str, int]:
    total: dict[str, int] = {}
    for name, counts in after.counters.items():
        old = before.counters.get(name, {})
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value - old.get(key, 0)
    return total


# ------------------------------------------------------- configuration


def idle_cpu(system: System, seconds: float) -> dict[str, float]:
    """Each process's CPU while no saga runs, in percent of one core: what polling costs when idle."""
    time.sleep(1.0)
    before = {proc.name: proc.cpu() for proc in system.measured()}
    began = time.perf_counter()
    time.sleep(seconds)
    elapsed = time.perf_counter() - began
    return {proc.name: 100 * (proc.cpu() - before[proc.name]) / elapsed for proc in system.measured()}


def warm_up(ctx: Context, system: System) -> dict[str, Any]:
    """Runs sagas one at a time until one completes (Kafka groups joined, pools filled), then `warmup` more."""
    began = time.perf_counter()
    deadline = began + 90
    first = None
    while time.perf_counter() < deadline:
        result = run_one(system.api, "bench-warmup", ctx.poll_interval, timeout=30)
        if result.status == "COMPLETED":
            first = result.client_seconds
            break
        ctx.log(f"  warm-up saga ended {result.status}; trying again")
    if first is None:
        logs = "\n".join(f"--- {proc.name} log:\n{proc.log_tail(25)}" for proc in system.measured() if proc.log)
        raise RuntimeError(f"{system.name}: no saga completed within 90 s\n{logs}")
    budget_end = time.perf_counter() + 30
    for _ in range(ctx.sizes.warmup):
        run_one(system.api, "bench-warmup", ctx.poll_interval)
        if time.perf_counter() > budget_end:
            break
    return {"first_saga_ms": first * 1000, "seconds": time.perf_counter() - began}


def latency_alone(ctx: Context, system: System) -> dict[str, Any]:
    """One saga at a time: POST, then GET /api/sagas/{id} until it is final."""
    settle_stats(ctx, system)
    xacts_before = ctx.pg.xacts(system.database) if ctx.pg and system.database else None
    client: list[float] = []
    server: list[float] = []
    statuses: dict[str, int] = {}
    polls = 0
    budget_end = time.perf_counter() + ctx.sizes.alone_budget_seconds
    runs = 0
    for runs in range(1, ctx.sizes.latency_samples + 1):
        result = run_one(system.api, "bench-alone", ctx.poll_interval)
        statuses[result.status] = statuses.get(result.status, 0) + 1
        polls += result.polls
        if result.status == "COMPLETED":
            client.append(result.client_seconds)
            if result.server_seconds is not None:
                server.append(result.server_seconds)
        if runs >= 10 and time.perf_counter() > budget_end:
            ctx.log(f"  time budget ({ctx.sizes.alone_budget_seconds:.0f}s) used after {runs} sagas; stopping there")
            break
    commits_alone = None
    if xacts_before is not None and ctx.pg and system.database:
        settle_stats(ctx, system)
        commits_alone = (ctx.pg.xacts(system.database)[0] - xacts_before[0]) / max(1, runs)
    unobserved: list[float] = []
    budget_end = time.perf_counter() + ctx.sizes.alone_budget_seconds / 2
    for index in range(max(10, ctx.sizes.latency_samples // 2)):
        result = run_one_unobserved(system.api, system.db, "bench-alone-unobserved", ctx.poll_interval)
        if result.status == "COMPLETED" and result.server_seconds is not None:
            unobserved.append(result.server_seconds)
        if index >= 9 and time.perf_counter() > budget_end:
            break
    return {
        "client_ms": summary_ms(client),
        "server_ms": summary_ms(server),
        "server_ms_unobserved": summary_ms(unobserved),
        "db_commits_per_saga": commits_alone,
        "statuses": statuses,
        "runs": runs,
        "polls_per_saga": polls / max(1, runs),
        "poll_interval_ms": ctx.poll_interval * 1000,
    }


def breakdown(
    system: System, customer_id: str, produced_at: dict[tuple[str, str], float] | None = None
) -> dict[str, Any]:
    """Where one saga's time goes, from the outbox (queued, delivered) and the history (event applied).

    For each step: `orchestrator` is command queued (in the transaction applying the
    previous event) until the relay took it to send (`sent_at`, written with the claim;
    the publish and its acknowledgement follow before that transaction commits);
    `outside` is from there until the reply's application began (the publish, the
    participant, transport back, the event consumer). Summed over the five steps.
    """
    outbox = system.db.step_times(customer_id)
    inside: list[float] = []
    outside: list[float] = []
    total: list[float] = []
    per_step_inside: dict[str, list[float]] = {}
    per_step_outside: dict[str, list[float]] = {}
    participant: list[float] = []
    back: list[float] = []
    for row in system.db.rows(customer_id, with_history=True):
        entries = outbox.get(row.id, [])
        if row.status != "COMPLETED" or len(entries) != 5 or any(sent is None for _, _, sent in entries):
            continue
        events = [e for e in (row.history or []) if e.get("kind") == "event"]
        if len(events) != 5:
            continue
        saga_inside = saga_outside = saga_participant = saga_back = 0.0
        split = produced_at is not None
        for (command, queued, sent), event in zip(entries, events, strict=False):
            assert sent is not None
            applied = SagaDb._time(event["at"])
            a, b = (sent - queued).total_seconds(), (applied - sent).total_seconds()
            saga_inside += a
            saga_outside += b
            per_step_inside.setdefault(command, []).append(a)
            per_step_outside.setdefault(command, []).append(b)
            produced = produced_at.get((row.id, event["type"])) if produced_at is not None else None
            if produced is None:
                split = False
            else:
                saga_participant += produced - sent.timestamp()
                saga_back += applied.timestamp() - produced
        inside.append(saga_inside)
        outside.append(saga_outside)
        if split:
            participant.append(saga_participant)
            back.append(saga_back)
        if row.completed_at:
            total.append((row.completed_at - row.created_at).total_seconds())
    return {
        "sagas": len(total),
        "total_ms": summary_ms(total),
        "orchestrator_ms": summary_ms(inside),
        "outside_ms": summary_ms(outside),
        # Kafka only, from the reply records' producer timestamps (1 ms resolution):
        "delivered_to_reply_produced_ms": summary_ms(participant),
        "reply_produced_to_applied_ms": summary_ms(back),
        "per_step_median_ms": {
            command: {
                "orchestrator": summary_ms(per_step_inside[command])["median"],
                "outside": summary_ms(per_step_outside[command])["median"],
            }
            for command in per_step_inside
        },
    }


def settle_stats(ctx: Context, system: System, longest: float = 15.0) -> list[tuple[float, int]]:
    """Waits until PostgreSQL's statistics of the database stop changing (backends flush theirs
    when idle, not at once); returns (seconds, xact_commit) as seen while waiting."""
    seen: list[tuple[float, int]] = []
    if not (ctx.pg and system.database):
        return seen
    began = time.perf_counter()
    stable_since = None
    last = None
    while time.perf_counter() - began < longest:
        time.sleep(0.5)
        value = ctx.pg.xacts(system.database)[0]
        seen.append((round(time.perf_counter() - began, 1), value))
        if value == last:
            stable_since = stable_since or time.perf_counter()
            if time.perf_counter() - stable_since >= 1.5:
                break
        else:
            stable_since = None
        last = value
    return seen


def table_stats(system: System) -> dict[str, dict[str, int]]:
    """Rows inserted, updated (HOT or not) and deleted per table so far (pg_stat_user_tables)."""
    try:
        rows = system.db.all(
            "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables "
            "WHERE relname IN ('sagas', 'outbox', 'inbox')"
        )
    except Exception:
        return {}
    return {
        name: {"inserted": int(ins), "updated": int(upd), "hot_updated": int(hot), "deleted": int(dele)}
        for name, ins, upd, hot, dele in rows
    }


def saturation(ctx: Context, system: System, profiler: Profiler | None) -> dict[str, Any]:
    """POSTs N sagas from a pool of client threads, then waits until all are final."""
    n = ctx.sizes.sagas
    tag = f"bench-sat-{uuid.uuid4().hex[:8]}"
    settle_stats(ctx, system)  # the previous phase's statistics, flushed by idle backends
    xacts_before = ctx.pg.xacts(system.database) if ctx.pg and system.database else None
    wal_before = ctx.pg.wal_bytes() if ctx.pg and system.database else None
    tables_before = table_stats(system) if system.database else {}
    before = snapshot(system)
    if profiler is not None:
        for proc in [*system.orchestrators, *([system.simulator] if system.simulator else [])]:
            profiler.start(proc.name, proc.pid)
    rss_samples: dict[str, int] = {}
    progress: list[tuple[float, int]] = []
    posted: dict[str, Any] = {}

    def poster() -> None:
        posted["run"] = post_many(system.api, n, ctx.client_threads, tag)

    thread = threading.Thread(target=poster, name="bench-poster", daemon=True)
    thread.start()
    finished_posting: float | None = None
    final = 0
    while True:
        time.sleep(0.25)
        final = system.db.count_final(tag)
        now = time.perf_counter()
        progress.append((now - before.at, final))
        for proc in system.orchestrators:
            rss_samples[proc.name] = max(rss_samples.get(proc.name, 0), proc.memory().get("VmRSS", 0))
        if not thread.is_alive():
            if finished_posting is None:
                finished_posting = now
            run = posted["run"]
            if final >= len(run.ids):
                break
            if now - finished_posting > ctx.timeout:
                ctx.log(f"  timeout: {len(run.ids) - final} saga(s) not final {ctx.timeout:.0f}s after the last POST")
                break
        for proc in system.measured():
            if not proc.alive():
                raise RuntimeError(f"{proc.name} died during the run:\n{proc.log_tail()}")
    after = snapshot(system)
    profiles = profiler.stop() if profiler is not None else []
    run = posted["run"]
    settle_log = settle_stats(ctx, system)
    xacts_after = ctx.pg.xacts(system.database) if ctx.pg and system.database else None
    wal_after = ctx.pg.wal_bytes() if ctx.pg and system.database else None
    tables_after = table_stats(system) if system.database else {}

    rows = system.db.rows(tag, with_history=True)
    completed = [row for row in rows if row.status == "COMPLETED"]
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row.status] = statuses.get(row.status, 0) + 1
    done = len(completed)
    span = None
    if completed:
        first_created = min(row.created_at for row in rows)
        last_completed = max(row.completed_at or row.updated_at for row in completed)
        span = (last_completed - first_created).total_seconds()
    wall = after.at - before.at
    per_saga = max(done, 1)
    busy = after.jiffies[0] - before.jiffies[0]
    total = after.jiffies[1] - before.jiffies[1]
    cpu = {name: (after.cpu[name] - before.cpu[name]) for name in after.cpu}
    orchestrator_cpu = sum(cpu[p.name] for p in system.orchestrators)
    counters = counter_deltas(before, after)
    messages: float | None = sum(
        counters.get(k, 0)
        for k in ("commands_sent", "events_applied", "events_duplicate", "events_ignored", "events_bad")
    )
    if any(proc.base_url is None for proc in system.orchestrators):
        messages = None  # `saga worker` has no /metrics: its counters cannot be read
    result: dict[str, Any] = {
        "sagas": n,
        "posted": len(run.ids),
        "post_errors": len(run.errors),
        "post_error_examples": run.errors[:3],
        "completed": done,
        "not_completed": n - done,
        "statuses": statuses,
        "sagas_per_second": done / span if span else None,
        "sagas_per_second_wall": done / wall if wall else None,
        "span_seconds": span,
        "wall_seconds": wall,
        "post_seconds": run.finished - run.started,
        "posts_per_second": len(run.ids) / (run.finished - run.started) if run.finished > run.started else None,
        "post_latency_ms": summary_ms(run.post_seconds),
        "latency_under_load_ms": summary_ms(
            [((r.completed_at or r.updated_at) - r.created_at).total_seconds() for r in completed]
        ),
        "orchestrator_cpu_ms_per_saga": 1000 * orchestrator_cpu / per_saga,
        "cpu_ms_per_saga": {name: 1000 * seconds / per_saga for name, seconds in cpu.items()},
        "client_cpu_ms_per_saga": 1000 * (after.client_cpu - before.client_cpu) / per_saga,
        "machine_cpu_ms_per_saga": 1000 * busy / CLOCK_TICKS / per_saga,
        "unattributed_cpu_ms_per_saga": (
            1000 * busy / CLOCK_TICKS - 1000 * sum(cpu.values()) - 1000 * (after.client_cpu - before.client_cpu)
        )
        / per_saga,
        "machine_busy_percent": 100 * busy / total if total else None,
        "counters": counters,
        "counters_per_saga": {k: v / per_saga for k, v in sorted(counters.items())},
        "messages_per_saga": messages / per_saga if counters and messages is not None else None,
        "cpu_ceiling_sagas_per_second": (os.cpu_count() or 1) * per_saga / (busy / CLOCK_TICKS) if busy else None,
        "peak_rss_mb_during": {name: kib / MB for name, kib in rss_samples.items()},
        "history_check": check_histories(rows),
        "progress": [(round(t, 2), c) for t, c in progress[:: max(1, len(progress) // 60)]],
        "profiles": profiles,
        "stats_settling": settle_log,
    }
    if wal_before is not None and wal_after is not None:
        result["wal_kib_per_saga"] = (wal_after - wal_before) / 1024 / per_saga
    if tables_after:
        result["table_writes_per_saga"] = {
            table: {key: (value - tables_before.get(table, {}).get(key, 0)) / per_saga for key, value in stats.items()}
            for table, stats in tables_after.items()
        }
    if xacts_before is not None and xacts_after is not None:
        commits = xacts_after[0] - xacts_before[0]
        rollbacks = xacts_after[1] - xacts_before[1]
        result["db_commits_per_saga"] = commits / per_saga
        result["db_rollbacks_per_saga"] = rollbacks / per_saga
        result["db_commits_source"] = "pg_stat_database.xact_commit delta over the run"
    elif "db_commits" in counters:
        result["db_commits_per_saga"] = counters["db_commits"] / per_saga
        result["db_commits_source"] = "db_commits counter of /metrics"
    else:
        result["db_commits_per_saga"] = None
        result["db_commits_source"] = (
            "not measured: SQLite has no commit counter (needs a db_commits counter in /metrics)"
        )
    return result


def paced(ctx: Context, system: System, rate: float) -> dict[str, Any]:
    """Sagas POSTed at a steady `rate` (below saturation) for a few seconds: latency when nothing queues up."""
    seconds = ctx.sizes.paced_seconds
    n = max(10, int(rate * seconds))
    tag = f"bench-paced-{uuid.uuid4().hex[:8]}"
    began = time.perf_counter()
    run = post_many(system.api, n, ctx.client_threads, tag, interval=1 / rate)
    deadline = time.perf_counter() + ctx.timeout
    while system.db.count_final(tag) < len(run.ids) and time.perf_counter() < deadline:
        time.sleep(0.25)
    rows = system.db.rows(tag)
    completed = [row for row in rows if row.status == "COMPLETED"]
    span = None
    if completed:
        span = (
            max(r.completed_at or r.updated_at for r in completed) - min(r.created_at for r in rows)
        ).total_seconds()
    return {
        "target_rate": rate,
        "sagas": n,
        "completed": len(completed),
        "post_seconds": run.finished - run.started,
        "achieved_sagas_per_second": len(completed) / span if span else None,
        "latency_ms": summary_ms(
            [((r.completed_at or r.updated_at) - r.created_at).total_seconds() for r in completed]
        ),
        "seconds": time.perf_counter() - began,
        "breakdown": breakdown(system, tag),
        "tag": tag,
    }


def run_config(ctx: Context, name: str) -> dict[str, Any]:
    ctx.log(f"[{name}] starting servers")
    with ExitStack() as stack:
        system = start_system(ctx, name, stack)
        idle = {proc.name: proc.memory() for proc in system.orchestrators}
        ctx.log(f"[{name}] warm-up")
        result: dict[str, Any] = {"env": {k: v for k, v in system.env.items() if not k.startswith("SAGA_TOPIC_")}}
        result["warmup"] = warm_up(ctx, system)
        result["idle_cpu_percent"] = idle_cpu(system, ctx.sizes.idle_seconds)
        if name == "http" and system.simulator and system.simulator.base_url:
            ctx.log(f"[{name}] HTTP round trip to the simulator")
            result["http_round_trip_ms"] = limits.http_round_trip(system.simulator.base_url, ctx.sizes.rtt_samples)
        ctx.log(f"[{name}] {ctx.sizes.latency_samples} sagas one at a time")
        result["alone"] = latency_alone(ctx, system)
        try:
            result["alone"]["breakdown"] = breakdown(system, "bench-alone-unobserved")
        except Exception as error:  # the outbox's columns are the orchestrator's business; say so and go on
            result["alone"]["breakdown"] = {"error": f"{type(error).__name__}: {error}"}
        ctx.log(f"[{name}] {ctx.sizes.sagas} sagas at once")
        profiler = (
            Profiler(ctx.results / "profiles", f"{ctx.stamp}-{name}", gil=ctx.profile_gil) if ctx.profile else None
        )
        if profiler is not None:
            stack.callback(profiler.kill)
        result["saturation"] = saturation(ctx, system, profiler)
        rate = result["saturation"].get("sagas_per_second")
        if rate and ctx.sizes.paced_seconds > 0:
            ctx.log(
                f"[{name}] {ctx.paced_fraction:.0%} of that rate ({ctx.paced_fraction * rate:.0f} sagas/s) for {ctx.sizes.paced_seconds:.0f}s"
            )
            result["paced"] = paced(ctx, system, ctx.paced_fraction * rate)
        result["memory"] = {
            proc.name: {
                "idle_rss_mb": idle[proc.name].get("VmRSS", 0) / MB,
                "rss_mb": proc.memory().get("VmRSS", 0) / MB,
                "peak_rss_mb": proc.memory().get("VmHWM", 0) / MB,
            }
            for proc in system.orchestrators
        }
        result["processes"] = {proc.name: proc.pid for proc in system.measured()}
        total_sagas = int(system.db.scalar("SELECT count(*) FROM sagas"))
        result["total_sagas"] = total_sagas
        setup = system.kafka_setup
        if setup is not None and ctx.kafka is not None:
            ctx.log(f"[{name}] counting the records on the broker")
            from saga.entrypoints.config import DEFAULT_TOPICS

            topics = [setup.topic(t) for t in DEFAULT_TOPICS]
            produced_at: dict[tuple[str, str], float] = {}
            counts = limits.count_topic_records(ctx.kafka.bootstrap, topics, produced_at=produced_at)
            commands = sum(v for k, v in counts.items() if k.endswith("_commands"))
            events = sum(v for k, v in counts.items() if k.endswith("_events"))
            result["wire"] = {
                "commands": commands,
                "events": events,
                "sagas": total_sagas,
                "messages_per_saga": (commands + events) / max(1, total_sagas),
            }
            # The same breakdowns, now with when each reply was produced.
            for phase, tag in (("alone", "bench-alone-unobserved"), ("paced", result.get("paced", {}).get("tag"))):
                if tag and phase in result:
                    try:
                        result[phase]["breakdown"] = breakdown(system, tag, produced_at)
                    except Exception as error:
                        result[phase]["breakdown"] = {"error": f"{type(error).__name__}: {error}"}
    return result


# -------------------------------------------------------------- limits


def measure_limits(ctx: Context) -> dict[str, Any]:
    seconds = ctx.sizes.limit_seconds
    result: dict[str, Any] = {}
    if ctx.pg is not None:
        ctx.log(f"[limits] PostgreSQL single-row commits, 1 and 8 connections, {seconds:.0f}s each")
        database = ctx.pg.new_database("bench_limits")
        dsn = ctx.pg.dsn(database)
        result["pg_commits_per_second_1"] = limits.pg_commits_per_second(dsn, 1, seconds)
        result["pg_commits_per_second_8"] = limits.pg_commits_per_second(dsn, 8, seconds)
    ctx.log(f"[limits] SQLite single-row commits, 1 connection, {seconds:.0f}s")
    result["sqlite_commits_per_second_1"] = limits.sqlite_commits_per_second(ctx.scratch / "limits.db", seconds)
    if ctx.kafka is not None:
        ctx.log(f"[limits] Kafka produce-to-consume round trip, {ctx.sizes.rtt_samples} messages")
        env = ctx.kafka_env(ctx.kafka_setup(), "sqlite:///unused.db")
        result["kafka_round_trip_ms"] = limits.kafka_round_trip(env, ctx.sizes.rtt_samples)
        ctx.log(f"[limits] Kafka step round trip (record out, echoed back), {ctx.sizes.rtt_samples} messages")
        result["kafka_step_round_trip_ms"] = limits.kafka_step_round_trip(env, ctx.sizes.rtt_samples)
    return result


# --------------------------------------------------------------- scale


def run_inflight(ctx: Context) -> dict[str, Any]:
    """N sagas waiting on participants that never answer (Kafka, no simulator): the orchestrator's RSS."""
    assert ctx.pg is not None and ctx.kafka is not None
    n = ctx.sizes.inflight
    ctx.log(f"[inflight] {n} sagas in flight, participants silent")
    folder = ctx.scratch / "inflight"
    folder.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        database = ctx.pg.new_database("bench_inflight")
        db = SagaDb("postgres", ctx.pg.dsn(database))
        stack.callback(db.close)
        setup = ctx.kafka_setup()
        env = ctx.kafka_env(setup, ctx.pg.url(database), SAGA_STEP_DEADLINE_SECONDS="3600")
        port = free_port()
        proc = spawn(
            "serve",
            "orchestrator",
            saga_argv("serve", "--port", str(port)),
            env,
            folder / "serve.log",
            f"http://127.0.0.1:{port}",
        )
        assert proc.popen is not None
        stack.callback(stop_process, proc.popen)
        wait_http(proc)
        wait_group(ctx.kafka.bootstrap, setup.orchestrator_group, 1)
        time.sleep(2)
        idle = proc.memory()
        api = Api(proc.base_url or "")
        stack.callback(api.close)
        samples: list[tuple[int, float]] = []
        stop = threading.Event()

        def sampler() -> None:
            while not stop.wait(0.5):
                with suppress(Exception):
                    samples.append((int(db.scalar("SELECT count(*) FROM sagas")), proc.memory().get("VmRSS", 0) / MB))

        watcher = threading.Thread(target=sampler, daemon=True)
        watcher.start()
        tag = f"bench-inflight-{uuid.uuid4().hex[:8]}"
        began = time.perf_counter()
        run = post_many(api, n, ctx.client_threads, tag)
        deadline = time.perf_counter() + max(60.0, ctx.timeout)
        rows = unsent = -1
        while time.perf_counter() < deadline:
            rows, unsent = db.outbox_unsent()
            if rows >= len(run.ids) and unsent == 0:
                break
            time.sleep(0.5)
        relayed = time.perf_counter() - began
        time.sleep(3)
        stop.set()
        watcher.join()
        after = proc.memory()
        statuses = dict(db.all("SELECT status, count(*) FROM sagas GROUP BY status"))
        counters = api.counters()
    delta = (after.get("VmRSS", 0) - idle.get("VmRSS", 0)) / MB
    return {
        "sagas": n,
        "posted": len(run.ids),
        "post_errors": len(run.errors),
        "statuses": statuses,
        "outbox_rows": rows,
        "outbox_unsent": unsent,
        "seconds_to_relay_all": relayed,
        "idle_rss_mb": idle.get("VmRSS", 0) / MB,
        "rss_after_mb": after.get("VmRSS", 0) / MB,
        "rss_delta_mb": delta,
        "peak_rss_mb": after.get("VmHWM", 0) / MB,
        "peak_delta_mb": (after.get("VmHWM", 0) - idle.get("VmRSS", 0)) / MB,
        "within_50_mb": delta <= 50,
        "rss_by_sagas": samples[:: max(1, len(samples) // 20)],
        "counters": counters,
    }


def run_paging(ctx: Context) -> dict[str, Any]:
    """N finished sagas in PostgreSQL; GET /api/sagas?status=COMPLETED&limit=100 and its next pages."""
    assert ctx.pg is not None
    from saga.entrypoints.presenters import encode_cursor
    from saga.ports.persistence import PageCursor

    n = ctx.sizes.finished
    requests_per_page = ctx.sizes.paging_requests
    ctx.log(f"[paging] {n} finished sagas; listing pages")
    folder = ctx.scratch / "paging"
    folder.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        database = ctx.pg.new_database("bench_paging")
        db = SagaDb("postgres", ctx.pg.dsn(database))
        stack.callback(db.close)
        port = free_port()
        env = ctx.orchestrator_env(DATABASE_URL=ctx.pg.url(database), SAGA_TRANSPORT="memory")
        proc = spawn(
            "serve",
            "orchestrator",
            saga_argv("serve", "--port", str(port)),
            env,
            folder / "serve.log",
            f"http://127.0.0.1:{port}",
        )
        assert proc.popen is not None
        stack.callback(stop_process, proc.popen)
        wait_http(proc)
        api = Api(proc.base_url or "")
        stack.callback(api.close)
        model = run_one(api, "bench-paging-model", 0.001)
        if model.status != "COMPLETED":
            raise RuntimeError(f"the model saga ended {model.status}")
        model_id = db.scalar("SELECT id FROM sagas LIMIT 1")
        began = time.perf_counter()
        # Rows copied from the real one: new ids, 1,000 customers, one in ten FAILED, 20 ms apart going back.
        db.execute(
            """
            INSERT INTO sagas (id, customer_id, status, current_step, error, order_id, payment_id, amount_cents,
                               currency, order_details, payment_info, awaiting, compensations,
                               cancel_requested, ignored_events, version, created_at, updated_at, completed_at, due_at)
            SELECT gen_random_uuid()::text, 'cust_' || (g %% 1000),
                   CASE WHEN g %% 10 = 0 THEN 'FAILED' ELSE s.status END,
                   s.current_step, s.error, s.order_id, s.payment_id, s.amount_cents, s.currency, s.order_details,
                   s.payment_info, s.awaiting, s.compensations, s.cancel_requested, s.ignored_events,
                   s.version,
                   s.created_at - g * interval '20 milliseconds',
                   s.updated_at - g * interval '20 milliseconds',
                   s.completed_at - g * interval '20 milliseconds',
                   NULL
            FROM sagas s, generate_series(1, %s) g
            WHERE s.id = %s
            """,
            (n - 1, model_id),
        )
        # Each copy gets the model's history too, as the API lists it.
        db.execute(
            """
            INSERT INTO saga_history (saga_id, seq, at, kind, type, message_id, detail)
            SELECT s.id, h.seq, h.at, h.kind, h.type, h.message_id, h.detail
            FROM sagas s JOIN saga_history h ON h.saga_id = %s
            WHERE s.id <> %s
            """,
            (model_id, model_id),
        )
        db.execute("ANALYZE sagas")
        inserted = time.perf_counter() - began
        count = int(db.scalar("SELECT count(*) FROM sagas"))
        completed = int(db.scalar("SELECT count(*) FROM sagas WHERE status = 'COMPLETED'"))
        table_mb = float(db.scalar("SELECT pg_total_relation_size('sagas')")) / MB / MB

        def timed(path: str) -> tuple[float, int, dict[str, str], int]:
            began = time.perf_counter()
            status, headers, body = api.request("GET", path)
            elapsed = time.perf_counter() - began
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}: {body[:300]!r}")
            return elapsed, len(body), headers, body.count(b'"customer_id"')

        def repeat(path: str) -> dict[str, Any]:
            timed(path)
            times, sizes, items = [], [], []
            for _ in range(requests_per_page):
                elapsed, size, _, found = timed(path)
                times.append(elapsed)
                sizes.append(size)
                items.append(found)
            summary = summary_ms(times)
            summary["items"] = items[0]
            summary["kib"] = sizes[0] / 1024
            return summary

        first_path = "/api/sagas?status=COMPLETED&limit=100"
        first = repeat(first_path)
        # Follow Link rel=next for a few pages.
        followed = []
        path = first_path
        for _ in range(5):
            elapsed, _size, headers, found = timed(path)
            link = headers.get("link", "")
            followed.append({"ms": elapsed * 1000, "items": found})
            if 'rel="next"' not in link:
                break
            url = link.split(">")[0].lstrip("<")
            path = url[url.index("/api/") :]
        # A deep page: the cursor of the row halfway down the COMPLETED listing.
        created_at, saga_id = db.all(
            "SELECT created_at, id FROM sagas WHERE status = 'COMPLETED' ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 1",
            (completed // 2,),
        )[0]
        cursor = encode_cursor(PageCursor(created_at, saga_id))
        deep_path = f"/api/sagas?status=COMPLETED&limit=100&cursor={cursor}"
        deep = repeat(deep_path)
        unfiltered = repeat("/api/sagas?limit=100")
        plan_rows = db.all(
            "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM sagas WHERE status = 'COMPLETED' AND (created_at, id) < (%s, %s) "
            "ORDER BY created_at DESC, id DESC LIMIT 101",
            (created_at, saga_id),
        )
        plan = [row[0] for row in plan_rows]
    return {
        "sagas": count,
        "completed": completed,
        "insert_seconds": inserted,
        "table_mb": table_mb,
        "first_page_ms": first,
        "followed_pages": followed,
        "deep_page_ms": deep,
        "deep_page_offset": completed // 2,
        "unfiltered_first_page_ms": unfiltered,
        "deep_page_plan": plan,
        "under_50_ms": bool((first["p95"] or 1e9) < 50 and (deep["p95"] or 1e9) < 50),
    }
