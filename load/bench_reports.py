"""Benchmark the GGR report over a month of generated ledger entries: from the entries, and from roll-ups.

    python load/bench_reports.py --entries 10000000 --out docs/benchmarks.md

It starts an embedded PostgreSQL in a temporary directory (deleted at the end), applies the
ledger's migrations, and writes `--entries` applied operations with one entry each, spread evenly
over the 30 closed days before today, across players, providers and games. It then times, as
medians of `--repeat` runs: the month's report computed from the entries (the baseline, in the
same run, on the same server), building the month's roll-ups once, and the month's report read
from the roll-ups. ``--out FILE`` rewrites only the block between ``<!-- reports:begin -->`` and
``<!-- reports:end -->``.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from bench_rng import commit_of_head, write_section

from gateway.embedded import embedded_postgres
from gateway.runtime import ensure_database
from wallet.ledger import SCHEMA
from wallet.migrate import migrate
from wallet.reports import ggr, live

BEGIN, END = "<!-- reports:begin -->", "<!-- reports:end -->"
DAYS = 30
OPERATOR = "bench"

# Every other operation is a bet of 1.00 and the next its win of 0.60, in rounds of two; players,
# providers and games cycle so that each day holds every combination.
_OPERATIONS = """
INSERT INTO croupier.operations (transaction_id, provider, scope, kind, external_id, operator, player_id,
    currency, amount_minor, round_id, game_id, credit_kind, request_hash, state, created_at, updated_at)
SELECT md5(i::text)::uuid, 'prov' || (i % 4), '', CASE WHEN i % 2 = 0 THEN 'debit' ELSE 'credit' END,
    'x' || i, $1, 'player' || (i / 2 % $4), 'EUR', CASE WHEN i % 2 = 0 THEN 100 ELSE 60 END,
    'r' || (i / 2), 'game' || (i / 2 % 40), CASE WHEN i % 2 = 1 THEN 'win' END, '\\x00'::bytea, 'applied',
    t.at, t.at
FROM generate_series(0, $3 - 1) AS i,
    LATERAL (SELECT $2::timestamptz + (i::float8 / $3) * interval '30 days' AS at) AS t
"""
_ENTRIES = """
INSERT INTO croupier.entries (operation_id, operator, player_id, currency, amount_minor, created_at)
SELECT id, operator, player_id, currency, CASE kind WHEN 'debit' THEN -amount_minor ELSE amount_minor END,
    created_at
FROM croupier.operations WHERE operator = $1
"""


async def _median_ms(repeat: int, work: object) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await work()  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def bench(url: str, entries: int, players: int, repeat: int) -> dict[str, float]:
    """Generate the month and time the three ways of answering it."""
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn, "wallet", SCHEMA)
        first = (datetime.now(UTC) - timedelta(days=DAYS + 1)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        since, until = first.date(), first.date() + timedelta(days=DAYS - 1)
        started = time.perf_counter()
        await conn.execute(_OPERATIONS, OPERATOR, first, entries, players)
        await conn.execute(_ENTRIES, OPERATOR)
        await conn.execute("VACUUM ANALYZE croupier.operations, croupier.entries")
        generate_s = time.perf_counter() - started
        count = await conn.fetchval("SELECT count(*) FROM croupier.entries WHERE operator = $1", OPERATOR)
        live_ms = await _median_ms(repeat, lambda: live(conn, OPERATOR, since, until))
        started = time.perf_counter()
        built = await ggr(conn, OPERATOR, since, until)
        build_ms = (time.perf_counter() - started) * 1000
        rollup_ms = await _median_ms(repeat * 3, lambda: ggr(conn, OPERATOR, since, until))
        reference = await live(conn, OPERATOR, since, until)
        if built != reference:
            raise SystemExit("the roll-ups disagree with the entries")
        return {
            "entries": float(count),
            "rows": float(len(reference)),
            "generate_s": generate_s,
            "live_ms": live_ms,
            "build_ms": build_ms,
            "rollup_ms": rollup_ms,
        }
    finally:
        await conn.close()


def render(figures: dict[str, float], args: argparse.Namespace) -> str:
    """Return the results block."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rollup = figures["rollup_ms"]
    command = (
        f"python load/bench_reports.py --entries {args.entries} --players {args.players}"
        f" --repeat {args.repeat} --out docs/benchmarks.md"
    )
    machine = f"{platform.machine()}, Python {platform.python_version()}, embedded PostgreSQL, one connection"
    data = (
        f"{int(figures['entries']):,} ledger entries (one per operation) over {DAYS} closed days,"
        f" {args.players:,} players, 4 providers, 40 games: {int(figures['rows']):,} report rows;"
        f" generated in {figures['generate_s']:.0f} s"
    )
    rows = [
        ("from the entries (baseline, `wallet.reports.live`)", figures["live_ms"]),
        ("building the month's roll-ups, once", figures["build_ms"]),
        ("from the roll-ups (`wallet.reports.ggr`)", rollup),
    ]
    table = [f"| {name} | {ms:,.1f} | {ms / rollup:,.1f} |" for name, ms in rows]
    note = (
        f"Medians of {args.repeat} runs (the roll-up read: of {args.repeat * 3}). The roll-ups equal"
        " the report computed from the entries, row for row (checked in the run)."
    )
    head = ["| the month's GGR report | ms | x the roll-up read |", "|---|---:|---:|"]
    lines = [f"Measured {when} at commit `{commit_of_head()}` with", "", "```", command, "```", ""]
    return "\n".join([*lines, f"- machine: {machine}", f"- {data}", "", *head, *table, "", note])


def main() -> int:
    """Run the benchmark and print (or write) its block."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--players", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default="", help="document to write ('' for none)")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="croupier-bench-reports-") as tmp,
        embedded_postgres(Path(tmp) / "pgdata") as server_url,
    ):

        async def go() -> dict[str, float]:
            url = await ensure_database(server_url, "croupier_bench_reports", fresh=True)
            return await bench(url, args.entries, args.players, args.repeat)

        figures = asyncio.run(go())
    block = render(figures, args)
    print(block)
    if args.out:
        write_section(Path(args.out), block, BEGIN, END, "Reports: GGR from roll-ups")
    return 0


if __name__ == "__main__":
    sys.exit(main())
