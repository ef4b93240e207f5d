"""The benchmark's report: figures, ratios against the same run's baselines, and the doc block."""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
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


@dataclass
class Run:
    """Everything one run measured, with the machine it ran on."""

    args: argparse.Namespace
    pg: dict[str, str]
    phases: list[Phase]
    started: datetime


CPU_CAPTION = (
    "CPU milliseconds per operation, by process, from /proc. 'unattributed' is busy time the"
    " machine counted but charged to none of these processes: other programs, and kernel work"
    " such as context switches and loopback networking. 'server' is the bare endpoint in B and"
    " the gateway in C and D."
)


def _ratio(a: Phase, b: Phase) -> str:
    return f"{a.rate / b.rate:.3f}" if b.rate else "n/a"


def _target_line(target: float, seamless: Phase, ledger: Phase) -> str:
    if not (target and seamless.rate and ledger.rate):
        return "Target 1.5 x A: not measurable in this run."
    return (
        f"Target 1.5 x A = {target:,.0f} ops/s. Seamless path: {seamless.rate:,.0f} ops/s,"
        f" {seamless.rate / target:.1%} of the target ({target / seamless.rate:.0f}x short)."
        f" Ledger path: {ledger.rate:,.0f} ops/s, {ledger.rate / target:.1%} of the target"
        f" ({target / ledger.rate:.0f}x short)."
    )


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


def _environment(result: Run) -> list[str]:
    args, pg = result.args, result.pg
    loop = f"uvloop {uvloop.__version__}" if uvloop is not None else "asyncio"  # type: ignore[attr-defined]
    command = (
        f"python load/bench_wallet.py --seconds {args.seconds:g} --concurrency {args.concurrency}"
        f" --warmup {args.warmup:g} --out {args.out}"
    )
    machine = (
        f"- machine: `nproc` {len(os.sched_getaffinity(0))}, {platform.machine()},"
        f" {platform.system()} {platform.release()}"
    )
    python = (
        f"- Python {platform.python_version()}, {loop}, aiohttp {aiohttp.__version__},"
        f" asyncpg {asyncpg.__version__}"
    )
    postgres = (
        f"- PostgreSQL {pg['server_version']} (embedded, one server for every phase):"
        f" fsync={pg['fsync']}, synchronous_commit={pg['synchronous_commit']},"
        f" wal_sync_method={pg['wal_sync_method']}, full_page_writes={pg['full_page_writes']},"
        f" commit_delay={pg['commit_delay']}, shared_buffers={pg['shared_buffers']}"
    )
    phases = (
        f"- every phase: {args.concurrency} concurrent workers, {args.seconds:g} s measured after"
        f" {args.warmup:g} s of warm-up"
    )
    when = f"Measured {result.started:%Y-%m-%d %H:%M} UTC at commit {_commit()} with"
    return [when, "", "```", command, "```", "", machine, python, postgres, phases, ""]


def results_block(result: Run) -> str:
    """Return the generated part of docs/benchmarks.md: command, machine, figures and ratios."""
    a, b, c, d = result.phases
    lines = [BEGIN, *_environment(result)]
    lines += [
        "| phase | rate | p50 ms | p95 ms | p99 ms | completed | errors | refused |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {p.name} | {p.rate:,.0f} {p.unit}/s | {p.percentile_ms(50):.2f} |"
        f" {p.percentile_ms(95):.2f} | {p.percentile_ms(99):.2f} | {p.ops:,} | {p.errors} |"
        f" {sum(p.refused.values())} |"
        for p in result.phases
    ]
    lines += [
        "",
        "Ratios, all from this run:",
        "",
        "| ratio | value |",
        "|---|---:|",
        f"| C / A: full path (seamless, via PAM) ops/s per one-row commit/s | {_ratio(c, a)} |",
        f"| D / A: full path (ledger backend) ops/s per one-row commit/s | {_ratio(d, a)} |",
        f"| C / B: full path (seamless) ops/s per bare HTTP req/s | {_ratio(c, b)} |",
        f"| D / B: full path (ledger) ops/s per bare HTTP req/s | {_ratio(d, b)} |",
        f"| B / A: bare HTTP req/s per one-row commit/s | {_ratio(b, a)} |",
        "",
        _target_line(1.5 * a.rate, c, d),
        "",
        CPU_CAPTION,
        "",
    ]
    sources = ["load generator", "server", "PAM", "PostgreSQL", "Redis", "unattributed"]
    lines += [
        "| phase | " + " | ".join(sources) + " | machine busy | hypervisor steal |",
        "|---|" + "---:|" * (len(sources) + 2),
    ]
    for p in result.phases:
        cells = [f"{p.cpu_ms[k]:.2f}" if k in p.cpu_ms else "" for k in sources]
        lines.append(f"| {p.name} | " + " | ".join(cells) + f" | {p.machine_busy:.0%} | {p.steal:.0%} |")
    lines += ["", "Checks after the full-path phases:", ""]
    lines += [f"- {p.name[:1]}: {note}" for p in (c, d) for note in p.notes]
    lines += [END]
    return "\n".join(lines) + "\n"


DOC_HEAD = """# Benchmarks

What one bet or win costs on the gateway's hot path, measured against two floors taken in the
same run on the same machine: a one-row durable PostgreSQL commit, and a bare aiohttp request.
The figures below the line are written by `load/bench_wallet.py`; rerun it to refresh them.

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
