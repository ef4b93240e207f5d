"""Measuring a benchmark phase: latencies, rates, and the CPU each process spends (Linux /proc)."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

# --- CPU accounting from /proc (Linux), to see which process pays for an operation ----------

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def stat_fields(pid: int) -> list[str] | None:
    """Return /proc/<pid>/stat's fields after the command name, or None if unreadable."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def process_cpu_s(pid: int, *, reaped_children: bool = False) -> float:
    """Return the user plus system CPU seconds of a process (and its reaped children if asked)."""
    fields = stat_fields(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def postgres_cpu_s(postmaster: int) -> float:
    """Return the CPU seconds of the PostgreSQL server: postmaster, live and exited children."""
    total = process_cpu_s(postmaster, reaped_children=True)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == postmaster:
                total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def find_pid(*words: str) -> int | None:
    """Return the pid of a process whose command line holds every word, if there is one."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if all(any(word.encode() in arg for arg in argv) for word in words):
                return int(entry.name)
    return None


def machine_cpu_s() -> tuple[float, float, float]:
    """Return the machine's busy, stolen and total CPU seconds since boot, all CPUs together."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except OSError:
        return 0.0, 0.0, 0.0
    user, nice, system, idle, iowait, irq, softirq, steal = values
    busy = user + nice + system + irq + softirq
    return busy / CLK_TCK, steal / CLK_TCK, (busy + idle + iowait + steal) / CLK_TCK


@dataclass
class CpuMeter:
    """Named CPU sources read before and after a phase; each maps to a function of no arguments."""

    sources: dict[str, Callable[[], float]]
    start: dict[str, float] = field(default_factory=dict)
    machine: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def begin(self) -> None:
        """Take the first reading."""
        self.start = {name: read() for name, read in self.sources.items()}
        self.machine = machine_cpu_s()

    def end(self, phase: Phase) -> None:
        """Store CPU milliseconds per operation for each source, and how busy the machine was."""
        used = {name: read() - self.start[name] for name, read in self.sources.items()}
        busy, stolen, total = (now - then for now, then in zip(machine_cpu_s(), self.machine, strict=True))
        ops = max(phase.ops, 1)
        phase.cpu_ms = {name: 1000 * v / ops for name, v in used.items()}
        phase.cpu_ms["unattributed"] = 1000 * max(0.0, busy - sum(used.values())) / ops
        if total:
            phase.machine_busy, phase.steal = busy / total, stolen / total


# --- measuring ----------------------------------------------------------------------------


@dataclass
class Phase:
    """What one phase measured."""

    name: str
    unit: str
    concurrency: int
    key: str = ""  # the short label the report uses: A, B, E, C, D, D@512, D-half
    pool_size: int | None = None  # database connections of the process under test
    offered_rate: float | None = None  # open loop only: the arrival rate asked for
    seconds: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cpu_ms: dict[str, float] = field(default_factory=dict)
    machine_busy: float = float("nan")
    steal: float = float("nan")

    @property
    def ops(self) -> int:
        """Return the number of operations completed in the measured window."""
        return len(self.latencies_s)

    @property
    def rate(self) -> float:
        """Return operations per second."""
        return self.ops / self.seconds if self.seconds else 0.0

    def percentile_ms(self, pct: float) -> float:
        """Return a latency percentile in milliseconds (nearest rank)."""
        if not self.latencies_s:
            return float("nan")
        ordered = sorted(self.latencies_s)
        rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered)) - 1))
        return ordered[rank] * 1000

    def line(self) -> str:
        """Return a one-line summary for the console."""
        return (
            f"{self.name:<34} {self.rate:>9.1f} {self.unit}/s  p50 {self.percentile_ms(50):7.2f} ms"
            f"  p95 {self.percentile_ms(95):7.2f} ms  p99 {self.percentile_ms(99):7.2f} ms"
            f"  n={self.ops} errors={self.errors} refused={sum(self.refused.values())}"
        )


Step = Callable[[], Awaitable[str | None]]  # one operation; returns a refusal code or None

# What a failed operation raises: transport, server errors, and a body that is not JSON (ValueError).
FAILURES = (aiohttp.ClientError, TimeoutError, asyncpg.PostgresError, OSError, ValueError)
FAILED = "transport"


async def _attempt(phase: Phase, step: Step, errors: list[str]) -> str | None:
    """Run one operation; return its refusal code, FAILED if it failed, or None."""
    try:
        return await step()
    except FAILURES as exc:
        if len(errors) < 5:  # a few examples are enough
            errors.append(repr(exc))
        phase.errors += 1
        return FAILED


def _record(phase: Phase, code: str | None, latency_s: float) -> None:
    """Count one operation of the measured window."""
    phase.latencies_s.append(latency_s)
    if code is not None and code != FAILED:
        phase.refused[code] = phase.refused.get(code, 0) + 1


async def _begin_metering(meter: CpuMeter, warmup_s: float) -> None:
    await asyncio.sleep(warmup_s)
    meter.begin()


async def drive(phase: Phase, steps: list[Step], seconds: float, warmup_s: float, meter: CpuMeter) -> Phase:
    """Run each worker's step in a loop; count what completes after the warm-up until the end."""
    started = time.perf_counter()
    measure_from = started + warmup_s
    deadline = measure_from + seconds
    finished_at = measure_from
    errors: list[str] = []

    async def worker(step: Step) -> None:
        nonlocal finished_at
        while (t0 := time.perf_counter()) < deadline:
            code = await _attempt(phase, step, errors)
            t1 = time.perf_counter()
            if t0 >= measure_from:
                _record(phase, code, t1 - t0)
                finished_at = max(finished_at, t1)

    await asyncio.gather(_begin_metering(meter, warmup_s), *(worker(step) for step in steps))
    meter.end(phase)
    phase.seconds = finished_at - measure_from
    phase.notes.extend(f"error: {e}" for e in errors)
    return phase


async def drive_open(
    phase: Phase, steps: list[Step], rate_per_s: float, seconds: float, warmup_s: float, meter: CpuMeter
) -> Phase:
    """Start operations at a constant rate; each one's latency counts from its intended start."""
    # Open loop: a slow answer does not delay the next arrival, so a stall shows in the latencies
    # (no coordinated omission). Each operation takes a free step (one player, its bets and wins
    # in turn); if none is free it waits, and that wait is counted too.
    free: asyncio.Queue[Step] = asyncio.Queue()
    for step in steps:
        free.put_nowait(step)
    phase.offered_rate = rate_per_s
    started = time.perf_counter()
    measure_from = started + warmup_s
    deadline = measure_from + seconds
    errors: list[str] = []

    async def one(intended: float) -> None:
        step = await free.get()
        try:
            code = await _attempt(phase, step, errors)
        finally:
            free.put_nowait(step)
        if intended >= measure_from:
            _record(phase, code, time.perf_counter() - intended)

    metering = asyncio.create_task(_begin_metering(meter, warmup_s))
    in_flight: set[asyncio.Task[None]] = set()
    for n in itertools.count():
        intended = started + n / rate_per_s
        if intended >= deadline:
            break
        # Yield even when late, so that the operations already started keep running.
        await asyncio.sleep(max(0.0, intended - time.perf_counter()))
        task = asyncio.create_task(one(intended))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    await asyncio.gather(metering, *in_flight)
    meter.end(phase)
    phase.seconds = seconds  # the arrivals' window; the last answers may come after it
    phase.notes.extend(f"error: {e}" for e in errors)
    return phase
