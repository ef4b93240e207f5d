"""The benchmark's report: figures, ratios against the same run's floors, targets, and the doc block."""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiohttp
import asyncpg
from measure import Phase

try:
    import uvloop
except ImportError:  # pragma: no cover -- uvloop is not built for every platform
    uvloop = None  # type: ignore[assignment]

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
NOT_MEASURED = "not measured"
SWEEP_PREFIX = "D@"


@dataclass
class Run:
    """Everything one run measured, with the machine it ran on."""

    args: argparse.Namespace
    pg: dict[str, str]
    phases: list[Phase]
    started: datetime
    pool_cap: int  # the pool cap in force, which max_connections may have lowered below --pool-cap

    def phase(self, key: str) -> Phase | None:
        """Return the phase with this key, or None if the run has none."""
        return next((p for p in self.phases if p.key == key), None)

    def sweep(self) -> list[Phase]:
        """Return the sweep's phases (D@N), fewest workers first."""
        found = [p for p in self.phases if p.key.startswith(SWEEP_PREFIX)]
        return sorted(found, key=lambda p: p.concurrency)


SWEEP_CAPTION = (
    "D, the full path on the ledger backend, at each worker count of the sweep (CPU in"
    " milliseconds per operation):"
)
CPU_SOURCES = ("load generator", "server", "PAM", "PostgreSQL", "Redis", "unattributed")
CPU_CAPTION = (
    "CPU milliseconds per operation, by process, from /proc. 'unattributed' is busy time the"
    " machine counted but charged to none of these processes: other programs, and kernel work"
    " such as context switches and loopback networking. 'server' is the bare endpoint in B, the"
    " lean endpoint in E, and the gateway in C, D, the sweep and D-half."
)


# --- formatting ---------------------------------------------------------------------------


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def _cpu(phase: Phase, source: str) -> str:
    return f"{phase.cpu_ms[source]:.2f}" if source in phase.cpu_ms else ""


def _percentiles(phase: Phase) -> str:
    return " | ".join(_ms(phase.percentile_ms(pct)) for pct in (50, 95, 99))


def _quotient(a: Phase | None, b: Phase | None) -> float | None:
    """Return a's rate over b's, or None if either is missing or b completed nothing."""
    return a.rate / b.rate if a is not None and b is not None and b.rate else None


def _verdict(met: bool) -> str:
    return "met" if met else "not met"


def _quoted(text: str) -> str:
    return text or "''"


# --- the environment ----------------------------------------------------------------------


def _git(*args: str) -> str:
    """Run a read-only git command (no optional locks, so not even the index is refreshed)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    done = subprocess.run(["git", *args], capture_output=True, text=True, check=True, env=env)  # noqa: S603, S607
    return done.stdout.strip()


def _commit() -> str:
    """Return the repository's HEAD commit, marked if tracked files have changes, or 'unknown'."""
    try:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"`{head}`" + (" (with uncommitted changes)" if dirty else "")


def _command(args: argparse.Namespace) -> str:
    """Return the command line that reproduces this run."""
    sweep = ",".join(str(n) for n in args.sweep)
    command = (
        f"python load/bench_wallet.py --seconds {args.seconds:g} --concurrency {args.concurrency}"
        f" --warmup {args.warmup:g} --sweep {_quoted(sweep)} --pool-cap {args.pool_cap}"
    )
    if args.baseline_p50_ms is not None:
        command += f" --baseline-p50-ms {args.baseline_p50_ms:g}"
    return command + f" --out {_quoted(args.out)}"


def _postgres(pg: dict[str, str]) -> str:
    return (
        f"- PostgreSQL {pg['server_version']} (embedded, one server for every phase):"
        f" fsync={pg['fsync']}, synchronous_commit={pg['synchronous_commit']},"
        f" wal_sync_method={pg['wal_sync_method']}, full_page_writes={pg['full_page_writes']},"
        f" commit_delay={pg['commit_delay']}, shared_buffers={pg['shared_buffers']},"
        f" max_connections={pg['max_connections']}"
    )


def _workload(result: Run) -> list[str]:
    """Return the lines on workers, pools and timing."""
    args = result.args
    sweep = ", ".join(str(n) for n in args.sweep) or "none"
    lowered = f" (lowered from {args.pool_cap} by max_connections)" if result.pool_cap < args.pool_cap else ""
    workers = (
        f"- A, B, E, C and D: {args.concurrency} concurrent workers; D-half: open loop over"
        f" {args.concurrency} players; sweep of D at {sweep} workers"
    )
    pools = (
        "- pools of the servers under test: one connection per worker plus two, at most"
        f" {result.pool_cap}{lowered}"
    )
    timing = f"- every phase: {args.seconds:g} s measured after {args.warmup:g} s of warm-up"
    return [workers, pools, timing]


def _environment(result: Run) -> list[str]:
    loop = f"uvloop {uvloop.__version__}" if uvloop is not None else "asyncio"  # type: ignore[attr-defined]
    machine = (
        f"- machine: `nproc` {len(os.sched_getaffinity(0))}, {platform.machine()},"
        f" {platform.system()} {platform.release()}"
    )
    python = (
        f"- Python {platform.python_version()}, {loop}, aiohttp {aiohttp.__version__},"
        f" asyncpg {asyncpg.__version__}"
    )
    when = f"Measured {result.started:%Y-%m-%d %H:%M} UTC at commit {_commit()} with"
    head = [when, "", "```", _command(result.args), "```", ""]
    return [*head, machine, python, _postgres(result.pg), *_workload(result), ""]


# --- the tables ---------------------------------------------------------------------------


def _rate(phase: Phase) -> str:
    rate = f"{phase.rate:,.0f} {phase.unit}/s"
    # An open loop's rate is what it asked for, if the server kept up; show both.
    return rate if phase.offered_rate is None else f"{rate} (offered {phase.offered_rate:,.0f})"


def _phase_table(result: Run) -> list[str]:
    lines = [
        "| phase | workers | pool | rate | p50 ms | p95 ms | p99 ms | completed | errors | refused |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {p.name} | {p.concurrency} | {p.pool_size or ''} | {_rate(p)} | {_percentiles(p)} |"
        f" {p.ops:,} | {p.errors} | {sum(p.refused.values())} |"
        for p in result.phases
    ]
    return [*lines, ""]


def _sweep_table(result: Run) -> list[str]:
    sweep = result.sweep()
    if not sweep:
        return ["No sweep in this run (`--sweep ''`).", ""]
    lines = [
        SWEEP_CAPTION,
        "",
        "| workers | pool | rate | p50 ms | p95 ms | p99 ms | gateway CPU | PostgreSQL CPU |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {p.concurrency} | {p.pool_size or ''} | {_rate(p)} | {_percentiles(p)} |"
        f" {_cpu(p, 'server')} | {_cpu(p, 'PostgreSQL')} |"
        for p in sweep
    ]
    return [*lines, ""]


RATIOS = (
    ("D", "E", "full path (ledger) per lean ledger endpoint"),
    ("C", "E", "full path (seamless, via PAM) per lean ledger endpoint"),
    ("D", "B", "full path (ledger) per bare HTTP request"),
    ("C", "B", "full path (seamless) per bare HTTP request"),
    ("E", "A", "lean ledger endpoint per one-row commit"),
    ("B", "A", "bare HTTP request per one-row commit"),
)


def _ratio_table(result: Run) -> list[str]:
    lines = ["Ratios of rates, all from this run:", "", "| ratio | value |", "|---|---:|"]
    for top, bottom, what in RATIOS:
        value = _quotient(result.phase(top), result.phase(bottom))
        lines.append(f"| {top} / {bottom}: {what} | {'n/a' if value is None else f'{value:.3f}'} |")
    return [*lines, ""]


# --- the targets --------------------------------------------------------------------------

Target = tuple[str, str, str]  # what is aimed at, what was measured, the verdict


def _rate_target(result: Run, top: str, bottom: str, floor: float) -> Target:
    """Return the target that top's rate is at least floor times bottom's."""
    value = _quotient(result.phase(top), result.phase(bottom))
    if value is None:
        return f"{top} >= {floor:g} x {bottom}", NOT_MEASURED, NOT_MEASURED
    return f"{top} >= {floor:g} x {bottom}", f"{top} / {bottom} = {value:.3f}", _verdict(value >= floor)


def _tail_target(result: Run) -> Target:
    """Return the target on D-half's p99 latency."""
    half, aim = result.phase("D-half"), "D-half p99 <= 10 ms"
    if half is None or not half.ops:
        return aim, NOT_MEASURED, NOT_MEASURED
    p99 = half.percentile_ms(99)
    return aim, f"{p99:.2f} ms", _verdict(p99 <= 10.0)


def _single_target(result: Run) -> Target:
    """Return the target on D@1's p50: at most the given baseline plus 1 ms."""
    single, baseline = result.phase(f"{SWEEP_PREFIX}1"), result.args.baseline_p50_ms
    if baseline is None:
        aim = "D@1 p50 <= baseline + 1 ms (no baseline given: `--baseline-p50-ms`)"
    else:
        aim = f"D@1 p50 <= {baseline + 1:.2f} ms (baseline {baseline:g} ms + 1 ms)"
    if single is None or not single.ops:
        return aim, NOT_MEASURED, NOT_MEASURED
    p50 = single.percentile_ms(50)
    # Without a baseline the value is reported, not judged.
    return aim, f"{p50:.2f} ms", "reported" if baseline is None else _verdict(p50 <= baseline + 1.0)


def _scaling_target(result: Run) -> Target:
    """Return the target that D does not lose throughput from 32 to 512 workers."""
    low, high = result.phase(f"{SWEEP_PREFIX}32"), result.phase(f"{SWEEP_PREFIX}512")
    aim = "no throughput drop from D@32 to D@512"
    if low is None or high is None:
        return aim, NOT_MEASURED, NOT_MEASURED
    measured = f"{low.rate:,.0f} -> {high.rate:,.0f} ops/s"
    return aim, measured, _verdict(high.rate >= low.rate)


TARGETS: tuple[Callable[[Run], Target], ...] = (
    lambda r: _rate_target(r, "D", "E", 1.2),
    lambda r: _rate_target(r, "D", "B", 0.4),
    lambda r: _rate_target(r, "C", "E", 0.6),
    lambda r: _rate_target(r, "C", "B", 0.2),
    _tail_target,
    _single_target,
    _scaling_target,
)


def _target_table(result: Run) -> list[str]:
    lines = ["Targets:", "", "| target | measured | verdict |", "|---|---:|---|"]
    lines += ["| {} | {} | {} |".format(*target(result)) for target in TARGETS]
    return [*lines, ""]


def _cpu_table(result: Run) -> list[str]:
    lines = [
        CPU_CAPTION,
        "",
        "| phase | " + " | ".join(CPU_SOURCES) + " | machine busy | hypervisor steal |",
        "|---|" + "---:|" * (len(CPU_SOURCES) + 2),
    ]
    for p in result.phases:
        cells = " | ".join(_cpu(p, k) for k in CPU_SOURCES)
        lines.append(f"| {p.name} | {cells} | {p.machine_busy:.0%} | {p.steal:.0%} |")
    return [*lines, ""]


def _checks(result: Run) -> list[str]:
    # Every phase's notes, not only the checked ones, so that an error in a floor shows too.
    notes = [f"- {p.key}: {note}" for p in result.phases for note in p.notes]
    return ["Checks after the ledger and full-path phases:", "", *notes] if notes else []


def results_block(result: Run) -> str:
    """Return the generated part of docs/benchmarks.md: command, machine, figures, ratios, targets."""
    lines = [BEGIN, *_environment(result), *_phase_table(result), *_sweep_table(result)]
    lines += [*_ratio_table(result), *_target_table(result), *_cpu_table(result), *_checks(result)]
    return "\n".join([*lines, END]) + "\n"


DOC_HEAD = """# Benchmarks

What one bet or win costs on the gateway's hot path, measured against three floors taken in the
same run on the same machine: A, a one-row durable PostgreSQL commit; B, a bare aiohttp request;
and E, a lean ledger endpoint that writes a bet or win in one durable statement. The full paths
are C (seamless, through the PAM) and D (ledger backend); D also runs at each worker count of a
sweep, and open loop at half its best rate (D-half). The figures below the line are written by
`load/bench_wallet.py`; rerun it to refresh them.

"""


def write_doc(path: Path, block: str) -> None:
    """Replace the generated block in the document, or write a new document around it."""
    if path.exists():
        text = path.read_text()
        if BEGIN in text and END in text:
            pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END) + "\n?", re.DOTALL)
            path.write_text(pattern.sub(lambda _: block, text, count=1))
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DOC_HEAD + "## Results\n\n" + block)
