"""The seeded fault schedule: the same seed and sizes give the same faults at the same offsets."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from enum import StrEnum


class FaultKind(StrEnum):
    KILL = "kill"
    """SIGKILL an orchestrator process; started again after `duration` seconds."""
    POSTGRES_RESTART = "postgres_restart"
    """Stop PostgreSQL (`detail`: fast or immediate) for `duration` seconds, start it on the same data."""
    BROKER_PAUSE = "broker_pause"
    """SIGSTOP the broker for `duration` seconds, then SIGCONT."""
    AMBIGUOUS_COMMIT = "ambiguous_commit"
    """The proxy cuts the next COMMIT (`detail`: saga_insert or any) after forwarding it."""
    POISON = "poison"
    """Publish a record the orchestrators must dead-letter (`detail`: its variety)."""


POISON_VARIETIES = ("not_json", "not_an_object", "unknown_type", "unknown_saga", "missing_field")


@dataclass(frozen=True)
class Fault:
    at: float
    """Seconds after the load started."""
    kind: FaultKind
    target: int = 0
    """Which orchestrator process, for a kill."""
    duration: float = 0.0
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "kind": self.kind.value, "at": round(self.at, 3), "duration": round(self.duration, 3)}


@dataclass(frozen=True)
class ScheduleSizes:
    seconds: float
    """How long the load lasts; every fault starts and ends inside it."""
    processes: int
    """Orchestrator processes that can be killed."""
    kill_every: tuple[float, float] = (4.0, 12.0)
    postgres_restarts: int = 2
    postgres_down: tuple[float, float] = (3.0, 8.0)
    broker_pauses: int = 1
    broker_pause: tuple[float, float] = (8.0, 10.0)
    ambiguous_every: tuple[float, float] = (3.0, 8.0)
    poison_records: int = 50


def fault_schedule(seed: int, sizes: ScheduleSizes) -> list[Fault]:
    """The faults of a run, ordered by time. A pure function of `seed` and `sizes`."""
    rng = random.Random(f"{seed}:faults")
    end = sizes.seconds
    faults: list[Fault] = []
    at = rng.uniform(*sizes.kill_every) / 2
    while at < end - 5:
        faults.append(Fault(at, FaultKind.KILL, rng.randrange(sizes.processes), rng.uniform(0.5, 3.0)))
        at += rng.uniform(*sizes.kill_every)
    outages = sizes.postgres_restarts + sizes.broker_pauses
    kinds = [FaultKind.POSTGRES_RESTART] * sizes.postgres_restarts + [FaultKind.BROKER_PAUSE] * sizes.broker_pauses
    rng.shuffle(kinds)
    for index, kind in enumerate(kinds):
        # Outages are spread out and never overlap: slot `index` of `outages` equal slots.
        slot = end / outages
        if kind is FaultKind.POSTGRES_RESTART:
            down = rng.uniform(*sizes.postgres_down)
            detail = rng.choice(("fast", "immediate"))
        else:
            down = rng.uniform(*sizes.broker_pause)
            detail = ""
        down = min(down, slot * 0.6)
        start = index * slot + rng.uniform(0.1, 0.3) * slot
        faults.append(Fault(start, kind, 0, down, detail))
    at = rng.uniform(*sizes.ambiguous_every)
    while at < end - 2:
        faults.append(Fault(at, FaultKind.AMBIGUOUS_COMMIT, detail=rng.choice(("saga_insert", "any"))))
        at += rng.uniform(*sizes.ambiguous_every)
    for _ in range(sizes.poison_records):
        faults.append(Fault(rng.uniform(0, end - 1), FaultKind.POISON, detail=rng.choice(POISON_VARIETIES)))
    faults.sort(key=lambda fault: (fault.at, fault.kind.value))
    return faults
