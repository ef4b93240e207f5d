"""Benchmark the RNG: outcomes per second of the secure and provably fair sources, and raw bytes per second.

Run from the repository root:

    python load/bench_rng.py --seconds 1 --repeat 3 --out docs/benchmarks.md

Every figure sits beside a baseline measured in the same run, alternating with it: the standard
library's ``secrets.randbelow`` for outcomes, ``os.urandom`` for raw bytes, one bare
``hmac.digest`` for the fair source, and ``random.SystemRandom().shuffle`` for shuffles. One
process, one core; medians of ``--repeat`` runs. ``--out FILE`` rewrites only the block between
``<!-- rng:begin -->`` and ``<!-- rng:end -->`` (appending a "## RNG" section when FILE has none).
"""

from __future__ import annotations

import argparse
import functools
import hmac
import os
import platform
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rng.fair import FairSource
from rng.source import RecordingSource, SecureSource, shuffle

BEGIN, END = "<!-- rng:begin -->", "<!-- rng:end -->"
RANGES = (2, 37, 10_000, 2**32 - 1, 10**12)
CHUNK_BYTES = 65_536
SEED = bytes(range(32))


def rate(fn: Callable[[], object], seconds: float, units_per_call: int = 1) -> float:
    """Call ``fn`` repeatedly for about ``seconds`` and return units per second."""
    calls = 0
    batch = 64
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(batch):
            fn()
        calls += batch
        now = time.perf_counter()
        if now >= deadline:
            return calls * units_per_call / (now - started)


@dataclass
class Row:
    """One measured operation beside its baseline."""

    what: str
    unit: str
    ours: Callable[[], object]
    baseline_name: str
    baseline: Callable[[], object]
    units_per_call: int = 1


def fair_per_round() -> Callable[[], object]:
    """One round per call: a fresh FairSource at the next nonce, one roulette outcome."""
    nonce = iter(range(10**12))
    return lambda: FairSource(SEED, "bench", next(nonce)).randbelow(37)


def rows() -> list[Row]:
    """Every measured operation, each with its baseline."""
    secure = SecureSource()
    stream = FairSource(SEED, "bench", 0)
    system = random.SystemRandom()
    deck = list(range(52))
    hmac_nonce = iter(range(10**12))
    result = [
        Row(
            f"SecureSource.randbelow({n:,})",
            "outcomes/s",
            functools.partial(secure.randbelow, n),
            "secrets.randbelow",
            functools.partial(secrets.randbelow, n),
        )
        for n in RANGES
    ]
    result += [
        Row(
            "SecureSource.read_bytes(65,536)",
            "bytes/s",
            lambda: secure.read_bytes(CHUNK_BYTES),
            "os.urandom(65,536)",
            lambda: os.urandom(CHUNK_BYTES),
            CHUNK_BYTES,
        ),
        Row(
            "FairSource, one round per nonce, randbelow(37)",
            "outcomes/s",
            fair_per_round(),
            "hmac.digest (one block)",
            lambda: hmac.digest(SEED, f"bench:{next(hmac_nonce)}:0".encode(), "sha256"),
        ),
        Row(
            "FairSource, one long round, randbelow(37)",
            "outcomes/s",
            lambda: stream.randbelow(37),
            "secrets.randbelow",
            lambda: secrets.randbelow(37),
        ),
        Row(
            "RecordingSource(SecureSource), a round of 5 x randbelow(37)",
            "outcomes/s",
            recorded_round,
            "5 x secrets.randbelow",
            lambda: [secrets.randbelow(37) for _ in range(5)],
            5,
        ),
        Row(
            "shuffle(SecureSource, 52 cards)",
            "shuffles/s",
            lambda: shuffle(secure, deck),
            "SystemRandom.shuffle",
            lambda: system.shuffle(deck),
        ),
    ]
    return result


def recorded_round() -> list[tuple[int, int]]:
    """One round as the games play it: a fresh recorder, five draws, the record read back."""
    recorder = RecordingSource(SecureSource())
    for _ in range(5):
        recorder.randbelow(37)
    return recorder.draws


@dataclass
class Result:
    """Medians over the repeats."""

    row: Row
    ours: float
    baseline: float


def measure(seconds: float, repeat: int) -> list[Result]:
    """Measure every row and its baseline, alternating, ``repeat`` times; keep the medians."""
    results = []
    for row in rows():
        ours, base = [], []
        for _ in range(repeat):
            ours.append(rate(row.ours, seconds, row.units_per_call))
            base.append(rate(row.baseline, seconds, row.units_per_call))
        results.append(Result(row, statistics.median(ours), statistics.median(base)))
        print(f"{row.what}: {results[-1].ours:,.0f} {row.unit}", file=sys.stderr)
    return results


def commit_of_head() -> str:
    """Return the short commit id of HEAD, or 'unknown'."""
    git = shutil.which("git")
    if git is None:
        return "unknown"
    try:
        out = subprocess.run(  # noqa: S603 -- a fixed argv, no outside input
            [git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def render(results: list[Result], seconds: float, repeat: int) -> str:
    """Return the Markdown block for docs/benchmarks.md."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {platform.system()} {platform.release()}"
    lines = [
        f"Measured {when} at commit `{commit_of_head()}` with",
        "",
        "```",
        f"python load/bench_rng.py --seconds {seconds:g} --repeat {repeat} --out docs/benchmarks.md",
        "```",
        "",
        f"- machine: `nproc` {os.cpu_count()}, {machine}",
        f"- Python {platform.python_version()}; one process, one core; medians of {repeat} runs",
        f"  of {seconds:g} s, each alternating with its baseline",
        "",
        "| operation | rate | baseline (same run) | baseline rate | ratio |",
        "|---|---:|---|---:|---:|",
    ]
    lines.extend(
        f"| {r.row.what} | {r.ours:,.0f} {r.row.unit} | {r.row.baseline_name} | "
        f"{r.baseline:,.0f} {r.row.unit} | {r.ours / r.baseline:.2f} |"
        for r in results
    )
    lines += [
        "",
        "Ratio = ours / baseline. `SecureSource` reads the kernel for every draw (one `getrandom` call of",
        "1 to 5 bytes), as `secrets.randbelow` does; the fair source pays one HMAC-SHA256 per 32 bytes,",
        "so a round that needs one block costs about one `hmac.digest` plus the FairSource set-up.",
    ]
    return "\n".join(lines)


def write_section(
    path: Path, block: str, begin: str = BEGIN, end: str = END, heading: str = "RNG"
) -> None:
    """Replace the block between the markers, or append a section with the heading holding it."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{begin}\n{block}\n{end}{tail}"
    else:
        text = f"{text.rstrip()}\n\n## {heading}\n\n{begin}\n{block}\n{end}\n"
    path.write_text(text, encoding="utf-8")


def main() -> int:
    """Run the benchmark and print (and optionally write) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per measurement (1)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is kept (3)")
    parser.add_argument(
        "--out", default="", help="Markdown file whose rng block to rewrite ('' = print only)"
    )
    args = parser.parse_args()
    block = render(measure(args.seconds, args.repeat), args.seconds, args.repeat)
    print(block)
    if args.out:
        write_section(Path(args.out), block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
