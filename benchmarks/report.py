"""The table, the JSON file, and the comparison of two runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from benchmarks.phases import CONFIGS

ORIGINAL = {"sagas_per_second": 17, "one_saga_ms": 145, "cpu_ms_per_saga": 44, "rss_mb": 78}
TARGETS: dict[str, tuple[str, float, str]] = {
    # key: (comparison, goal, unit after the goal); the order the Targets block prints them in
    "kafka_sagas_per_second": (">=", 250, ""),
    "kafka_machine_cpu_ms_per_saga": ("<=", 7, ""),
    "kafka_orchestrator_cpu_ms_per_saga": ("<=", 3, ""),
    "kafka_db_commits_per_saga": ("<=", 2, ""),
    "http_db_commits_per_saga": ("<=", 2, ""),
    "kafka_one_saga_over_floor": ("<=", 1.2, "×"),
    "kafka_one_saga_orchestrator_ms": ("<", 5, ""),
    "http_sagas_per_second": (">=", 250, ""),
    "embedded_sagas_per_second": (">=", 1000, ""),
    "embedded_one_saga_median_ms": ("<", 5, ""),
    "kafka_workers_over_kafka": (">=", 1.3, "×"),
    "kafka_workers_processed_twice": ("==", 0, ""),
    "kafka_paced_over_one_saga": ("<", 2, "×"),
    "inflight_rss_delta_mb": ("<=", 50, ""),
    "paging_first_page_p95_ms": ("<", 50, ""),
    "paging_deep_page_p95_ms": ("<", 50, ""),
}
"""Each target: the measured figure must compare with the goal as said (sagas/s, ms, MB, ratios)."""


def get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def _ratio(a: Any, b: Any) -> float | None:
    if a is None or b in (None, 0):
        return None
    return float(a) / float(b)


def derived(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per configuration: the limit each throughput and latency is compared with, and the ratios."""
    lim = results.get("limits", {})
    rtt = get(lim, "kafka_round_trip_ms", "median")
    step_rtt = get(lim, "kafka_step_round_trip_ms", "median")
    out: dict[str, dict[str, Any]] = {}
    for name, config in results.get("configs", {}).items():
        if "error" in config:
            continue
        sat = config.get("saturation", {})
        commits = sat.get("db_commits_per_saga")
        rate = sat.get("sagas_per_second")
        commit_rate = (
            lim.get("sqlite_commits_per_second_1") if name == "embedded" else lim.get("pg_commits_per_second_8")
        )
        commit_rate_1 = (
            lim.get("sqlite_commits_per_second_1") if name == "embedded" else lim.get("pg_commits_per_second_1")
        )
        limit = _ratio(commit_rate, commits)
        median = get(config, "alone", "client_ms", "median")
        out[name] = {
            "throughput_limit": limit,
            "throughput_limit_1_connection": _ratio(commit_rate_1, commits),
            "throughput_of_limit": _ratio(rate, limit),
            "five_round_trips_ms": 5 * rtt if rtt else None,
            "five_step_round_trips_ms": 5 * step_rtt if step_rtt else None,
            "alone_median_over_five_rtt": _ratio(median, 5 * rtt if rtt else None),
            "under_load_median_over_five_rtt": _ratio(
                get(sat, "latency_under_load_ms", "median"), 5 * rtt if rtt else None
            ),
            "alone_median_over_five_step_rtt": _ratio(median, 5 * step_rtt if step_rtt else None),
        }
    return out


class Verdict(NamedTuple):
    """One target of the table: the measured figure beside its goal.

    `key` names the target across runs (for --compare and the JSON file); `figure` is the
    measured number (None when this run did not measure it: configuration or scale check
    not run, or a file from before the figure was collected); `shown` is it as printed;
    `met` is None when there is no figure; `limit` says what this run's machine allowed.
    """

    key: str
    label: str
    figure: float | None
    shown: str
    goal: str
    met: bool | None
    limit: str


def _compares(figure: float, op: str, goal: float) -> bool:
    if op == ">=":
        return figure >= goal
    if op == "<=":
        return figure <= goal
    if op == "<":
        return figure < goal
    if op == "==":
        return figure == goal
    raise ValueError(f"unknown comparison {op!r}")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def verdicts(results: dict[str, Any]) -> list[Verdict]:
    """Every target in TARGETS order, measured in `results` (a run's JSON, old files included:
    a figure the file lacks gives met=None, printed n/a). Figures in ms, sagas/s, MB, ratios."""
    configs = results.get("configs", {})
    scale = results.get("scale", {})
    lim = results.get("limits", {})
    meta = results.get("meta", {})
    extra = derived(results)
    cores = meta.get("cpus")
    rows: list[Verdict] = []

    def add(key: str, label: str, value: Any, limit: str = "", digits: int = 1, spoiled: str = "") -> None:
        op, goal, unit = TARGETS[key]
        figure = _number(value)
        met = None if figure is None else _compares(figure, op, goal)
        if spoiled:  # sagas/s over sagas that did not all complete is no throughput
            met = False if met else met
            limit = f"{spoiled}; {limit}" if limit else spoiled
        shown = fmt(figure, digits) + (unit if figure is not None else "")
        rows.append(Verdict(key, label, figure, shown, f"{'=' if op == '==' else op} {fmt(goal)}{unit}", met, limit))

    def sat(name: str, *path: str) -> Any:
        return get(configs, name, "saturation", *path)

    def throughput_limit(name: str) -> str:
        parts = []
        commits = get(extra, name, "throughput_limit")
        if commits is not None:
            source = "SQLite" if name == "embedded" else "PG 8 conn"
            parts.append(f"DB commits {fmt(commits)}/s ({source})")
        ceiling = sat(name, "cpu_ceiling_sagas_per_second")
        if ceiling is not None:
            parts.append(f"CPU ceiling {fmt(ceiling)}/s")
        return ", ".join(parts)

    def not_completed(name: str) -> str:
        missing = sat(name, "not_completed")
        return f"{fmt(missing)} not completed" if missing else ""

    # Kafka + PostgreSQL
    add(
        "kafka_sagas_per_second",
        "kafka: sagas/s at saturation",
        sat("kafka", "sagas_per_second"),
        throughput_limit("kafka"),
        spoiled=not_completed("kafka"),
    )
    machine = sat("kafka", "machine_cpu_ms_per_saga")
    budget = (
        f"{fmt(cores)} cores at {fmt(TARGETS['kafka_sagas_per_second'][1])}/s allow "
        f"{fmt(1000 * cores / TARGETS['kafka_sagas_per_second'][1])} ms"
        if isinstance(cores, int) and cores
        else ""
    )
    busy = sat("kafka", "machine_busy_percent")
    add(
        "kafka_machine_cpu_ms_per_saga",
        "kafka: whole machine CPU ms/saga",
        machine,
        "; ".join(p for p in (budget, f"busy {fmt(busy)}% of the cores" if busy is not None else "") if p),
        digits=2,
    )
    parts = [
        f"{who} {fmt(get(configs, 'kafka', 'saturation', 'cpu_ms_per_saga', process), 2)}"
        for who, process in (("simulator", "simulator"), ("PostgreSQL", "postgres"), ("broker", "tansu"))
        if get(configs, "kafka", "saturation", "cpu_ms_per_saga", process) is not None
    ]
    add(
        "kafka_orchestrator_cpu_ms_per_saga",
        "kafka: orchestrator CPU ms/saga",
        sat("kafka", "orchestrator_cpu_ms_per_saga"),
        (f"of {fmt(machine, 2)} for the machine; " if machine is not None else "") + ", ".join(parts),
        digits=2,
    )
    for name in ("kafka", "http"):
        pg_8, pg_1 = lim.get("pg_commits_per_second_8"), lim.get("pg_commits_per_second_1")
        rate = TARGETS[f"{name}_sagas_per_second"][1]
        allowed = (
            f"PG commits/s ÷ {fmt(rate)} sagas/s allow {fmt(pg_8 / rate)} (8 conn), {fmt(pg_1 / rate)} (1 conn)"
            if isinstance(pg_8, (int, float)) and isinstance(pg_1, (int, float))
            else ""
        )
        add(
            f"{name}_db_commits_per_saga",
            f"{name}: DB commits/saga at saturation",
            sat(name, "db_commits_per_saga"),
            allowed,
            digits=2,
        )
    median = get(configs, "kafka", "alone", "client_ms", "median")
    floor = get(extra, "kafka", "five_step_round_trips_ms")
    step = get(lim, "kafka_step_round_trip_ms", "median")
    add(
        "kafka_one_saga_over_floor",
        "kafka: one saga median ÷ 5-step floor",
        _ratio(median, floor),
        f"{fmt(median)} ms ÷ {fmt(floor)} ms (5 × {fmt(step, 2)} ms step round trip)" if floor else "",
        digits=2,
    )
    share = get(configs, "kafka", "alone", "breakdown")
    add(
        "kafka_one_saga_orchestrator_ms",
        "kafka: one saga, orchestrator's share ms",
        get(share, "orchestrator_ms", "median"),
        f"queued→delivered summed over 5 steps, median of {fmt(get(share, 'sagas'))}; "
        f"outside {fmt(get(share, 'outside_ms', 'median'))} ms"
        if share
        else "",
    )
    # HTTP + PostgreSQL, embedded
    add(
        "http_sagas_per_second",
        "http: sagas/s at saturation",
        sat("http", "sagas_per_second"),
        throughput_limit("http"),
        spoiled=not_completed("http"),
    )
    add(
        "embedded_sagas_per_second",
        "embedded: sagas/s at saturation",
        sat("embedded", "sagas_per_second"),
        throughput_limit("embedded"),
        spoiled=not_completed("embedded"),
    )
    server = get(configs, "embedded", "alone", "server_ms", "median")
    add(
        "embedded_one_saga_median_ms",
        "embedded: one saga median ms",
        get(configs, "embedded", "alone", "client_ms", "median"),
        f"server side (created→completed) {fmt(server)} ms" if server is not None else "",
    )
    # Two worker processes beside the API process
    one, two = sat("kafka", "sagas_per_second"), sat("kafka-workers", "sagas_per_second")
    add(
        "kafka_workers_over_kafka",
        "kafka-workers: sagas/s ÷ kafka's",
        _ratio(two, one),
        f"{fmt(two)} ÷ {fmt(one)} sagas/s; CPU ceiling {fmt(sat('kafka-workers', 'cpu_ceiling_sagas_per_second'))}/s"
        if two is not None and one is not None
        else "",
        digits=2,
        spoiled=not_completed("kafka-workers"),
    )
    check = sat("kafka-workers", "history_check")
    twice = None
    detail = ""
    if isinstance(check, dict):
        counts = [
            check.get("sagas_with_an_event_twice"),
            check.get("sagas_with_other_event_sequences"),
            check.get("sagas_with_commands_resent_or_out_of_order"),
        ]
        # None when no saga completed: nothing was checked, nothing is shown met.
        twice = sum(c for c in counts if isinstance(c, int)) if check.get("completed") else None
        detail = (
            f"of {fmt(check.get('completed'))} completed: {fmt(counts[0])} with an event twice, "
            f"{fmt(counts[1])} other event sequences, {fmt(counts[2])} commands re-sent/reordered"
        )
    add("kafka_workers_processed_twice", "kafka-workers: sagas processed twice", twice, detail, digits=0)
    # Latency at 70% of saturation
    paced = get(configs, "kafka", "paced", "latency_ms", "median")
    fraction = meta.get("paced_fraction", 0.7)
    rate = get(configs, "kafka", "paced", "target_rate")
    add(
        "kafka_paced_over_one_saga",
        f"kafka: median at {fraction:.0%} load ÷ one saga's",
        _ratio(paced, median),
        f"{fmt(paced)} ms at {fmt(rate)} sagas/s ÷ {fmt(median)} ms alone" if paced is not None else "",
        digits=2,
    )
    # Scale
    inflight = scale.get("inflight") or {}
    size = inflight.get("sagas")
    failed = {name: f"ERROR {str(found['error'])[:80]}" for name, found in scale.items() if "error" in found}
    add(
        "inflight_rss_delta_mb",
        "in flight: RSS delta MB",
        inflight.get("rss_delta_mb"),
        (f"{fmt(size)} sagas" + (", the target's size is 10,000" if size < 10_000 else ""))
        if isinstance(size, int)
        else failed.get("inflight", ""),
    )
    paging = scale.get("paging") or {}
    finished = paging.get("sagas")
    smaller = (
        (f"over {fmt(finished)} sagas" + (", the target's size is 100,000" if finished < 100_000 else ""))
        if isinstance(finished, int)
        else failed.get("paging", "")
    )
    add("paging_first_page_p95_ms", "paging: first page p95 ms", get(paging, "first_page_ms", "p95"), smaller)
    add("paging_deep_page_p95_ms", "paging: deep page p95 ms", get(paging, "deep_page_ms", "p95"), smaller)
    return rows


def table(results: dict[str, Any]) -> str:
    configs = results.get("configs", {})
    names = [name for name in CONFIGS if name in configs]
    extra = derived(results)
    lim = results.get("limits", {})
    meta = results.get("meta", {})
    width = 46
    col = 15
    lines: list[str] = []

    def header(title: str) -> None:
        lines.append("")
        lines.append(title)

    def row(label: str, values: list[str], note: str = "") -> None:
        lines.append(f"  {label:<{width}}" + "".join(f"{v:>{col}}" for v in values) + (f"   {note}" if note else ""))

    def metric(label: str, pick: Callable[[dict[str, Any], str], Any], note: str = "", digits: int = 1) -> None:
        values = []
        for name in names:
            config = configs[name]
            values.append("error" if "error" in config else fmt(pick(config, name), digits))
        row(label, values, note)

    sizes = meta.get("sizes", {})
    lines.append(
        f"saga benchmark {meta.get('timestamp', '')}  ({meta.get('cpus', '?')} cores; {fmt(sizes.get('sagas'))} sagas "
        f"at once, {fmt(sizes.get('latency_samples'))} one at a time; fetch_max_wait_ms={meta.get('fetch_wait_ms')}; "
        f"git {meta.get('git', '?')})"
    )
    lines.append(f"  {'':<{width}}" + "".join(f"{n:>{col}}" for n in names) + "   target (original implementation)")
    for name in names:
        if "error" in configs[name]:
            lines.append(f"  {name}: ERROR {configs[name]['error'][:300]}")

    def sat(config: dict[str, Any], name: str) -> dict[str, Any]:
        found: dict[str, Any] = config.get("saturation", {})
        return found

    header("Throughput at saturation")
    metric(
        "sagas/s (first POST to last completed)",
        lambda c, n: sat(c, n).get("sagas_per_second"),
        "kafka, http >= 250; embedded >= 1,000 (17)",
    )
    metric("not completed (of N)", lambda c, n: sat(c, n).get("not_completed"))
    metric("POSTs accepted/s", lambda c, n: sat(c, n).get("posts_per_second"))
    metric(
        "limit: DB commits/s ÷ commits/saga",
        lambda c, n: get(extra, n, "throughput_limit"),
        "PG 8 conn, SQLite 1 conn",
    )
    metric("  same, 1 PG connection", lambda c, n: get(extra, n, "throughput_limit_1_connection"))
    metric("sagas/s ÷ limit", lambda c, n: get(extra, n, "throughput_of_limit"), digits=2)
    metric(
        "CPU ceiling: cores ÷ machine CPU/saga",
        lambda c, n: sat(c, n).get("cpu_ceiling_sagas_per_second"),
        "sagas/s if all cores were busy at this cost",
    )

    header("One saga alone, client side (POST until GET says COMPLETED)")
    metric("median ms", lambda c, n: get(c, "alone", "client_ms", "median"), "embedded < 5 (145)")
    metric("p95 ms", lambda c, n: get(c, "alone", "client_ms", "p95"))
    metric("p99 ms", lambda c, n: get(c, "alone", "client_ms", "p99"))
    metric("median ÷ 5 Kafka round trips", lambda c, n: get(extra, n, "alone_median_over_five_rtt"), digits=2)
    metric(
        "median ÷ 5 Kafka step round trips",
        lambda c, n: get(extra, n, "alone_median_over_five_step_rtt"),
        digits=2,
        note="step = record out + reply back (2 hops); kafka <= 1.2",
    )
    metric("server side median ms (created→completed)", lambda c, n: get(c, "alone", "server_ms", "median"))
    metric("  same, watched in the DB, no GET polling", lambda c, n: get(c, "alone", "server_ms_unobserved", "median"))
    metric(
        "    of which orchestrator (queued→delivered)",
        lambda c, n: get(c, "alone", "breakdown", "orchestrator_ms", "median"),
        "sum over 5 steps, medians; kafka < 5",
    )
    metric(
        "    of which outside (delivered→reply applied)",
        lambda c, n: get(c, "alone", "breakdown", "outside_ms", "median"),
    )
    metric(
        "      delivered→reply produced (Kafka)",
        lambda c, n: get(c, "alone", "breakdown", "delivered_to_reply_produced_ms", "median"),
        "hop out + participant",
    )
    metric(
        "      reply produced→applied (Kafka)",
        lambda c, n: get(c, "alone", "breakdown", "reply_produced_to_applied_ms", "median"),
        "hop back + event consumer",
    )

    header("Latency under saturation (all N queued at once; created_at → completed_at)")
    metric("median ms", lambda c, n: get(sat(c, n), "latency_under_load_ms", "median"))
    metric("p95 ms", lambda c, n: get(sat(c, n), "latency_under_load_ms", "p95"))
    metric("p99 ms", lambda c, n: get(sat(c, n), "latency_under_load_ms", "p99"))
    metric("median ÷ 5 Kafka round trips", lambda c, n: get(extra, n, "under_load_median_over_five_rtt"), digits=1)
    frac = meta.get("paced_fraction", 0.7)
    header(f"Latency at a steady {frac:.0%} of the saturation rate (created_at → completed_at)")
    metric("rate POSTed, sagas/s", lambda c, n: get(c, "paced", "target_rate"))
    metric("median ms", lambda c, n: get(c, "paced", "latency_ms", "median"), "kafka < 2 × one saga alone")
    metric("p95 ms", lambda c, n: get(c, "paced", "latency_ms", "p95"))
    metric("p99 ms", lambda c, n: get(c, "paced", "latency_ms", "p99"))
    metric(
        "  median of orchestrator (queued→delivered)",
        lambda c, n: get(c, "paced", "breakdown", "orchestrator_ms", "median"),
        "sum over 5 steps",
    )
    metric(
        "  median of outside (delivered→reply applied)",
        lambda c, n: get(c, "paced", "breakdown", "outside_ms", "median"),
    )
    metric(
        "    delivered→reply produced (Kafka)",
        lambda c, n: get(c, "paced", "breakdown", "delivered_to_reply_produced_ms", "median"),
    )
    metric(
        "    reply produced→applied (Kafka)",
        lambda c, n: get(c, "paced", "breakdown", "reply_produced_to_applied_ms", "median"),
    )

    header("Cost per saga (during the saturation run)")
    metric("DB commits", lambda c, n: sat(c, n).get("db_commits_per_saga"), "kafka, http <= 2", digits=2)
    metric("  same, one saga alone", lambda c, n: get(c, "alone", "db_commits_per_saga"), digits=2)
    metric("DB rollbacks", lambda c, n: sat(c, n).get("db_rollbacks_per_saga"), digits=2)
    metric("WAL KiB (PostgreSQL)", lambda c, n: sat(c, n).get("wal_kib_per_saga"), digits=1)
    metric(
        "sagas rows updated (of which HOT)",
        lambda c, n: (
            None
            if get(sat(c, n), "table_writes_per_saga", "sagas") is None
            else f"{fmt(get(sat(c, n), 'table_writes_per_saga', 'sagas', 'updated'), 2)} "
            f"({fmt(get(sat(c, n), 'table_writes_per_saga', 'sagas', 'hot_updated'), 2)})"
        ),
    )
    metric("messages (/metrics counters)", lambda c, n: sat(c, n).get("messages_per_saga"), digits=2)
    metric("messages on the broker (all phases)", lambda c, n: get(c, "wire", "messages_per_saga"), digits=2)
    metric(
        "orchestrator CPU ms (all processes)",
        lambda c, n: sat(c, n).get("orchestrator_cpu_ms_per_saga"),
        "kafka <= 3 (44)",
        digits=2,
    )
    metric("simulator CPU ms", lambda c, n: get(sat(c, n), "cpu_ms_per_saga", "simulator"), digits=2)
    metric("PostgreSQL CPU ms", lambda c, n: get(sat(c, n), "cpu_ms_per_saga", "postgres"), digits=2)
    metric("broker CPU ms", lambda c, n: get(sat(c, n), "cpu_ms_per_saga", "tansu"), digits=2)
    metric("benchmark client CPU ms", lambda c, n: sat(c, n).get("client_cpu_ms_per_saga"), digits=2)
    metric("whole machine CPU ms", lambda c, n: sat(c, n).get("machine_cpu_ms_per_saga"), "kafka <= 7", digits=2)
    metric(
        "  not in the above (kernel, other programs)",
        lambda c, n: sat(c, n).get("unattributed_cpu_ms_per_saga"),
        digits=2,
    )
    metric("machine busy % (of all cores)", lambda c, n: sat(c, n).get("machine_busy_percent"))

    header("Idle (no sagas), CPU % of one core")
    metric(
        "orchestrator processes",
        lambda c, n: (
            sum(v for k, v in (c.get("idle_cpu_percent") or {}).items() if k == "serve" or k.startswith("worker"))
            if c.get("idle_cpu_percent")
            else None
        ),
    )
    metric("simulator", lambda c, n: get(c, "idle_cpu_percent", "simulator"))

    header("Memory")
    metric("peak RSS MB, serve", lambda c, n: get(c, "memory", "serve", "peak_rss_mb"), "(78)")
    metric("peak RSS MB, worker-1", lambda c, n: get(c, "memory", "worker-1", "peak_rss_mb"))
    metric("peak RSS MB, worker-2", lambda c, n: get(c, "memory", "worker-2", "peak_rss_mb"))

    header("Processed once (saturation sagas' histories)")
    metric(
        "sagas with a success event twice",
        lambda c, n: get(sat(c, n), "history_check", "sagas_with_an_event_twice"),
        "0",
    )
    metric(
        "sagas with commands re-sent/reordered",
        lambda c, n: get(sat(c, n), "history_check", "sagas_with_commands_resent_or_out_of_order"),
    )

    header("This machine's limits (same servers, same run)")
    rtt = lim.get("kafka_round_trip_ms", {})
    lines.append(
        f"  {'PostgreSQL commits/s, 1 connection':<{width}}{fmt(lim.get('pg_commits_per_second_1')):>{col}}   (issue: ~4,500)"
    )
    lines.append(
        f"  {'PostgreSQL commits/s, 8 connections':<{width}}{fmt(lim.get('pg_commits_per_second_8')):>{col}}   (issue: ~13,000)"
    )
    lines.append(
        f"  {'SQLite commits/s, 1 connection (WAL)':<{width}}{fmt(lim.get('sqlite_commits_per_second_1')):>{col}}"
    )
    lines.append(
        f"  {'Kafka round trip ms, median / p95':<{width}}{fmt(rtt.get('median'), 2) + ' / ' + fmt(rtt.get('p95'), 2):>{col}}"
        f"   fetch_max_wait_ms={rtt.get('fetch_max_wait_ms')}, linger_ms={rtt.get('linger_ms')} (issue: ~5)"
    )
    step = lim.get("kafka_step_round_trip_ms", {})
    lines.append(
        f"  {'Kafka step round trip ms, median / p95':<{width}}{fmt(step.get('median'), 2) + ' / ' + fmt(step.get('p95'), 2):>{col}}"
        f"   out and echoed back: a saga step's floor; 5 of them {fmt(5 * step['median'] if step.get('median') else None)} ms"
    )
    http_rtt = get(configs, "http", "http_round_trip_ms")
    if http_rtt:
        lines.append(f"  {'HTTP round trip to simulator ms, median':<{width}}{fmt(http_rtt.get('median'), 2):>{col}}")

    scale = results.get("scale", {})
    if scale:
        header("Scale")
        inflight = scale.get("inflight")
        if inflight:
            if "error" in inflight:
                lines.append(f"  in flight: ERROR {inflight['error'][:300]}")
            else:
                lines.append(
                    f"  {fmt(inflight['sagas'])} sagas in flight (Kafka, silent participants): RSS idle "
                    f"{fmt(inflight['idle_rss_mb'])} MB -> {fmt(inflight['rss_after_mb'])} MB, delta "
                    f"{fmt(inflight['rss_delta_mb'])} MB (peak {fmt(inflight['peak_rss_mb'])} MB)   target: delta <= 50"
                )
        paging = scale.get("paging")
        if paging:
            if "error" in paging:
                lines.append(f"  paging: ERROR {paging['error'][:300]}")
            else:
                first, deep, unf = paging["first_page_ms"], paging["deep_page_ms"], paging["unfiltered_first_page_ms"]
                lines.append(
                    f"  {fmt(paging['sagas'])} finished sagas, GET /api/sagas?status=COMPLETED&limit=100: first page "
                    f"median {fmt(first['median'])} / p95 {fmt(first['p95'])} ms; deep page (offset "
                    f"{fmt(paging['deep_page_offset'])}) median {fmt(deep['median'])} / p95 {fmt(deep['p95'])} ms"
                    f"   target: < 50"
                )
                lines.append(
                    f"  {'':<4}no status filter: median {fmt(unf['median'])} ms; page body {fmt(first['kib'])} KiB; "
                    f"Link followed: " + ", ".join(fmt(p["ms"]) for p in paging["followed_pages"]) + " ms"
                )

    lines.extend(targets_block(results))
    return "\n".join(lines) + "\n"


def mark(met: bool | None) -> str:
    """`met`, `MISS`, or `n/a` when the run has no figure for the target."""
    return "n/a" if met is None else ("met" if met else "MISS")


def targets_block(results: dict[str, Any]) -> list[str]:
    """The Targets block: one line per target (verdict, target, figure, goal, this run's limit),
    then how many are met. Lines without a trailing newline."""
    found = verdicts(results)
    lines = ["", "Targets (figure and limits from this run)"]
    for v in found:
        lines.append(f"  {mark(v.met):<4} {v.label:<41}{v.shown:>9}   goal {v.goal:<9}  {v.limit}".rstrip())
    met = sum(1 for v in found if v.met)
    missed = sum(1 for v in found if v.met is False)
    unknown = sum(1 for v in found if v.met is None)
    lines.append(f"  {met} met, {missed} missed" + (f", {unknown} not measured in this run" if unknown else ""))
    return lines


# ------------------------------------------------------------ compare

COMPARED: list[tuple[str, tuple[str, ...]]] = [
    ("sagas/s", ("saturation", "sagas_per_second")),
    ("not completed", ("saturation", "not_completed")),
    ("one saga median ms", ("alone", "client_ms", "median")),
    ("one saga p95 ms", ("alone", "client_ms", "p95")),
    ("one saga p99 ms", ("alone", "client_ms", "p99")),
    ("under load median ms", ("saturation", "latency_under_load_ms", "median")),
    ("under load p95 ms", ("saturation", "latency_under_load_ms", "p95")),
    ("paced median ms", ("paced", "latency_ms", "median")),
    ("paced p95 ms", ("paced", "latency_ms", "p95")),
    ("DB commits/saga", ("saturation", "db_commits_per_saga")),
    ("messages/saga", ("saturation", "messages_per_saga")),
    ("orchestrator CPU ms/saga", ("saturation", "orchestrator_cpu_ms_per_saga")),
    ("machine CPU ms/saga", ("saturation", "machine_cpu_ms_per_saga")),
    ("simulator CPU ms/saga", ("saturation", "cpu_ms_per_saga", "simulator")),
    ("PostgreSQL CPU ms/saga", ("saturation", "cpu_ms_per_saga", "postgres")),
    ("peak RSS MB serve", ("memory", "serve", "peak_rss_mb")),
]


def compare(old: dict[str, Any], new: dict[str, Any]) -> str:
    lines = [f"compared: {get(old, 'meta', 'timestamp')} (old) -> {get(new, 'meta', 'timestamp')} (new)"]

    def line(label: str, a: Any, b: Any) -> None:
        change = ""
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a:
            change = f"{100 * (b - a) / a:+.0f}%"
        lines.append(f"  {label:<44}{fmt(a):>12}{fmt(b):>12}{change:>9}")

    for name in CONFIGS:
        a, b = get(old, "configs", name), get(new, "configs", name)
        if not a and not b:
            continue
        lines.append(f"{name}:")
        for label, path in COMPARED:
            line(label, get(a, *path), get(b, *path))
    lines.append("limits and scale:")
    for label, path in [
        ("PG commits/s 1 conn", ("limits", "pg_commits_per_second_1")),
        ("PG commits/s 8 conn", ("limits", "pg_commits_per_second_8")),
        ("Kafka round trip median ms", ("limits", "kafka_round_trip_ms", "median")),
        ("in flight RSS delta MB", ("scale", "inflight", "rss_delta_mb")),
        ("paging first page p95 ms", ("scale", "paging", "first_page_ms", "p95")),
        ("paging deep page p95 ms", ("scale", "paging", "deep_page_ms", "p95")),
    ]:
        line(label, get(old, *path), get(new, *path))
    lines.append("targets (old -> new, verdict of each):")
    before = {v.key: v for v in verdicts(old)}
    for v in verdicts(new):
        was = before[v.key]
        change = f"{100 * (v.figure - was.figure) / was.figure:+.0f}%" if v.figure is not None and was.figure else ""
        lines.append(
            f"  {v.label:<44}{was.shown:>12}{v.shown:>12}{change:>9}   {mark(was.met):>4} -> {mark(v.met):<4}  goal {v.goal}"
        )
    return "\n".join(lines) + "\n"


def write(results: dict[str, Any], folder: Path, stamp: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stamp}.json"
    # The verdicts ride along for readers of the file; --show and --compare recompute them.
    verdicts_now = [
        {"key": v.key, "label": v.label, "figure": v.figure, "goal": v.goal, "met": v.met, "limit": v.limit}
        for v in verdicts(results)
    ]
    text = json.dumps({**results, "targets": verdicts_now}, indent=2, default=str)
    path.write_text(text)
    (folder / "latest.json").write_text(text)
    return path
