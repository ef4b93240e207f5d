"""Benchmark the bet/win hot path against floors taken in the same run, on the same PostgreSQL.

Run from the repository root:

    python load/bench_wallet.py --seconds 8 --concurrency 32 --out docs/benchmarks.md

One embedded PostgreSQL (fsync and synchronous_commit on) and one embedded Redis serve every
phase. The servers under test run in their own spawned processes, each on its own event loop
(uvloop where available); the load generator runs in this process. The floors (A: a one-row
commit, B: a bare aiohttp endpoint, E: a lean one-statement ledger endpoint) and the full paths
(C: seamless via the PAM, D: ledger) run for the same time at the same concurrency; then D runs
at each concurrency of the sweep, and open loop at half its best rate (D-half). The figures are
reported as ratios of the floors, because shared machines are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import lean
import orjson
from fullpath import BET, CURRENCY, OPENING_MINOR, Player, Provider, open_players, unsigned_rounds, verify
from measure import (
    CpuMeter,
    Phase,
    Step,
    drive,
    drive_open,
    find_pid,
    postgres_cpu_s,
    process_cpu_s,
    stat_fields,
)
from servers import Children
from wallet_report import Run, results_block, write_doc

from gateway.runtime import backing_services, ensure_database
from gateway.settings import OperatorSettings, Settings
from providers.base import ProviderConfig
from wallet.pam.settings import PamSettings
from wallet.policy import OperatorPolicy
from wallet.signing import Signer

try:
    import uvloop
except ImportError:  # pragma: no cover -- uvloop is not built for every platform
    uvloop = None  # type: ignore[assignment]

SEAMLESS, LEDGER, HALF = "bench-seamless", "bench-ledger", "bench-ledger-half"
PROVIDER_KEY = "gen-bench"
PAM_KEY = "pam-bench"
DEFAULT_SWEEP = "1,8,32,128,512"
DEFAULT_POOL_CAP = 64
# Connections kept free of the gateway's pool: PostgreSQL's superuser reserve (3), the PAM's
# pool (20) and this script's own set-up and check connections.
CONNECTION_HEADROOM = 30

log = logging.getLogger("bench")


# --- the floors ---------------------------------------------------------------------------


async def baseline_insert(
    url: str, concurrency: int, seconds: float, warmup_s: float, meter: CpuMeter
) -> Phase:
    """Baseline A: one-row autocommit INSERTs, one connection per worker."""
    setup = await asyncpg.connect(url)
    try:
        await setup.execute(
            "DROP TABLE IF EXISTS bench; CREATE TABLE bench (id bigint GENERATED ALWAYS AS IDENTITY"
            " PRIMARY KEY, worker int NOT NULL, n bigint NOT NULL, payload text NOT NULL,"
            " created_at timestamptz NOT NULL DEFAULT now())"
        )
    finally:
        await setup.close()
    phase = Phase("A. one-row durable INSERT (asyncpg)", "ops", concurrency, "A", concurrency)
    async with asyncpg.create_pool(url, min_size=concurrency, max_size=concurrency) as pool:
        conns = [await pool.acquire() for _ in range(concurrency)]
        try:

            def step_for(worker: int, conn: asyncpg.pool.PoolConnectionProxy[Any]) -> Step:
                counter = iter(range(1 << 62))

                async def step() -> None:
                    await conn.execute(
                        "INSERT INTO bench (worker, n, payload) VALUES ($1, $2, $3)",
                        worker,
                        next(counter),
                        "bet 1.00 EUR round r-0001",
                    )

                return step

            steps = [step_for(i, c) for i, c in enumerate(conns)]
            await drive(phase, steps, seconds, warmup_s, meter)
        finally:
            for conn in conns:
                await pool.release(conn)
    return phase


async def baseline_http(
    url: str,
    http: aiohttp.ClientSession,
    concurrency: int,
    seconds: float,
    warmup_s: float,
    meter: CpuMeter,
) -> Phase:
    """Baseline B: a bare aiohttp endpoint in its own process, POSTed a small JSON body."""
    phase = Phase("B. bare aiohttp endpoint", "req", concurrency, "B")

    async def step() -> str | None:
        payload = {
            "operator": SEAMLESS,
            "player_id": "p-0001",
            "currency": CURRENCY,
            "amount": BET,
            "round_id": uuid.uuid4().hex,
            "transaction_id": uuid.uuid4().hex,
        }
        async with http.post(
            url, data=orjson.dumps(payload), headers={"Content-Type": "application/json"}
        ) as resp:
            body = orjson.loads(await resp.read())
        return None if resp.status == 200 and body.get("status") == "OK" else f"HTTP {resp.status}"

    return await drive(phase, [step] * concurrency, seconds, warmup_s, meter)


# --- the run ------------------------------------------------------------------------------


_PG_SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "wal_sync_method",
    "full_page_writes",
    "commit_delay",
    "shared_buffers",
    "max_connections",
)


async def _pg_settings(url: str) -> tuple[dict[str, str], int]:
    """Return the server settings that decide commit cost, and the postmaster's pid."""
    conn = await asyncpg.connect(url)
    try:
        pg = {n: str(await conn.fetchval(f"SHOW {n}")) for n in _PG_SETTINGS}
        # Read the backend's parent while the backend lives: it is the postmaster.
        fields = stat_fields(int(await conn.fetchval("SELECT pg_backend_pid()")))
    finally:
        await conn.close()
    return pg, int(fields[1]) if fields else 0


async def durable(url: str) -> tuple[dict[str, str], int]:
    """Make sure commits are durable (fsync, synchronous_commit on) and return the settings."""
    pg, postmaster = await _pg_settings(url)
    if pg["fsync"] != "on" or pg["synchronous_commit"] != "on":
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("ALTER SYSTEM SET fsync = on")
            await conn.execute("ALTER SYSTEM SET synchronous_commit = on")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()
        await asyncio.sleep(0.5)
        pg, postmaster = await _pg_settings(url)
    if pg["fsync"] != "on" or pg["synchronous_commit"] != "on":
        raise RuntimeError(f"commits are not durable: {pg}")
    return pg, postmaster


def _client(workers: int) -> aiohttp.ClientSession:
    """Return an HTTP client with one keep-alive connection per worker."""
    connector = aiohttp.TCPConnector(limit=workers, limit_per_host=workers, keepalive_timeout=60)
    return aiohttp.ClientSession(connector=connector)


def _done(phase: Phase) -> Phase:
    print("   " + phase.line(), flush=True)
    return phase


@dataclasses.dataclass
class Bench:
    """One run's servers, databases and settings, shared by its phases."""

    args: argparse.Namespace
    ready: Settings
    children: Children
    postmaster: int
    pool_cap: int
    bench_db: str = ""
    gw_db: str = ""
    pam_db: str = ""
    pam_secret: bytes = dataclasses.field(default_factory=lambda: secrets.token_bytes(32))
    provider_secret: bytes = dataclasses.field(default_factory=lambda: secrets.token_bytes(32))
    pam_url: str = ""

    def pool_for(self, workers: int) -> int:
        """Return the pool of a server under test: one connection per worker plus two, capped."""
        # Plus two, as the gateway's outbox worker and health checks need their own; capped, as
        # PostgreSQL admits only max_connections and a pool that large would not be deployed.
        return min(workers + 2, self.pool_cap)

    def meter(self, **servers: int) -> CpuMeter:
        """Return a CPU meter of this process, PostgreSQL, Redis and the named server pids."""
        me = os.getpid()
        sources: dict[str, Callable[[], float]] = {
            "load generator": lambda: process_cpu_s(me),
            "PostgreSQL": lambda: postgres_cpu_s(self.postmaster),
        }
        assert self.ready.redis_url is not None
        redis_pid = find_pid("redis-server", f"{urlsplit(self.ready.redis_url).port}")
        if redis_pid is not None:
            sources["Redis"] = lambda: process_cpu_s(redis_pid)
        for name, pid in servers.items():
            sources[name] = lambda pid=pid: process_cpu_s(pid)  # type: ignore[misc]
        return CpuMeter(sources)

    async def start_gateway(self, pool_size: int, operators: list[str], label: str) -> str:
        """Start a gateway serving the named operators and return its base URL."""
        seamless = OperatorSettings(
            OperatorPolicy(SEAMLESS), "seamless", self.pam_url, PAM_KEY, self.pam_secret
        )
        settings = dataclasses.replace(
            self.ready,
            database_url=self.gw_db,
            operators={
                op: seamless if op == SEAMLESS else OperatorSettings(OperatorPolicy(op)) for op in operators
            },
            providers={"generic": ProviderConfig("generic", {PROVIDER_KEY: self.provider_secret})},
            pool_size=pool_size,
            engine_writers=int(os.environ.get("BENCH_ENGINE_WRITERS", "1")),
            engine_window_ms=float(os.environ.get("BENCH_ENGINE_WINDOW_MS", self.ready.engine_window_ms)),
        )
        return await self.children.start("gateway", settings, label)

    async def lean_phase(self, http: aiohttp.ClientSession) -> Phase:
        """Phase E: generic-shaped bets and wins to the lean endpoint, one player per worker."""
        c = self.args.concurrency
        players = [Player("bench-lean", f"bench-{n:04d}", "-") for n in range(c)]
        ids = [p.player_id for p in players]
        await lean.prepare(self.bench_db, ids, OPENING_MINOR)
        pool = self.pool_for(c)
        url = await self.children.start("lean", lean.LeanConfig(self.bench_db, pool))
        phase = Phase("E. lean ledger endpoint, one statement", "ops", c, "E", pool)
        cpu = self.meter(server=self.children.pids["lean"])
        try:
            steps = [unsigned_rounds(url, http, p) for p in players]
            await drive(phase, steps, self.args.seconds, self.args.warmup, cpu)
        finally:
            self.children.stop("lean")  # its pool's connections are needed by the gateway's
        note, ok = await lean.check(self.bench_db, ids, OPENING_MINOR)
        phase.notes.append(note)
        if not ok or phase.refused or phase.errors:
            phase.notes.append("CHECK FAILED: something was refused, failed or disagrees")
        return phase

    async def full_path(
        self,
        phase: Phase,
        operator: str,
        *,
        seamless: bool = False,
        open_rate: float | None = None,
    ) -> Phase:
        """Run a full-path phase on a fresh gateway: each worker its own player; then check."""
        pool, workers = phase.pool_size or 0, phase.concurrency
        url = await self.start_gateway(pool, [operator], f"gateway-{phase.key}")
        try:
            pam_db = self.pam_db if seamless else None
            players = await open_players(self.ready, self.gw_db, pam_db, operator, workers)
            async with _client(workers) as http:
                provider = Provider(url, Signer(PROVIDER_KEY, self.provider_secret), http)
                servers = {"server": self.children.pids["gateway"]}
                if seamless:
                    servers["PAM"] = self.children.pids["pam"]
                steps = [provider.rounds(p) for p in players]
                secs, warm, cpu = self.args.seconds, self.args.warmup, self.meter(**servers)
                if open_rate is None:
                    await drive(phase, steps, secs, warm, cpu)
                else:
                    await drive_open(phase, steps, open_rate, secs, warm, cpu)
        finally:
            self.children.stop("gateway")
        await verify(phase, self.gw_db, pam_db, operator, players)
        return phase


async def _phases(bench: Bench) -> list[Phase]:
    """Run every phase in turn and return what each measured."""
    args, c = bench.args, bench.args.concurrency
    secs = f"{args.seconds:g} s"
    print(f"A: one-row durable INSERT, {c} connections, {secs} ...", flush=True)
    phases = [_done(await baseline_insert(bench.bench_db, c, args.seconds, args.warmup, bench.meter()))]
    async with _client(c) as http:
        print(f"B: bare aiohttp endpoint, {c} concurrent clients, {secs} ...", flush=True)
        bare_url = await bench.children.start("bare", None) + "/ping"
        cpu = bench.meter(server=bench.children.pids["bare"])
        phases.append(_done(await baseline_http(bare_url, http, c, args.seconds, args.warmup, cpu)))
        bench.children.stop("bare")
        print(f"E: lean ledger endpoint, {c} workers, pool {bench.pool_for(c)}, {secs} ...", flush=True)
        phases.append(_done(await bench.lean_phase(http)))

    bench.pam_url = await bench.children.start("pam", PamSettings(bench.pam_db, {PAM_KEY: bench.pam_secret}))
    pool = bench.pool_for(c)
    print(f"C: full path, seamless backend via PAM, {c} workers, pool {pool}, {secs} ...", flush=True)
    phase = Phase("C. full path, seamless -> PAM", "ops", c, "C", pool)
    phases.append(_done(await bench.full_path(phase, SEAMLESS, seamless=True)))
    bench.children.stop("pam")
    print(f"D: full path, ledger backend, {c} workers, pool {pool}, {secs} ...", flush=True)
    phase = Phase("D. full path, ledger backend", "ops", c, "D", pool)
    phases.append(_done(await bench.full_path(phase, LEDGER)))

    for n in args.sweep:
        pool = bench.pool_for(n)
        print(f"D@{n}: ledger backend, {n} workers, pool {pool}, {secs} ...", flush=True)
        phase = Phase(f"D@{n}. ledger, {n} workers", "ops", n, f"D@{n}", pool)
        phases.append(_done(await bench.full_path(phase, f"bench-sweep-{n}")))

    best = max(p.rate for p in phases if p.key.startswith("D"))
    pool = bench.pool_for(c)
    phase = Phase("D-half. ledger, open loop at half D's best rate", "ops", c, "D-half", pool)
    if best > 0:
        what = f"open loop at {best / 2:.1f} ops/s, {c} players, pool {pool}, {secs}"
        print(f"D-half: ledger backend, {what} ...", flush=True)
        phases.append(_done(await bench.full_path(phase, HALF, open_rate=best / 2)))
    else:
        phase.notes.append("CHECK FAILED: not run, as no D phase completed an operation")
        phases.append(phase)
    return phases


async def run(args: argparse.Namespace, ready: Settings, children: Children) -> Run:
    """Run every phase on one PostgreSQL and return what they measured."""
    assert ready.database_url is not None
    started = datetime.now(UTC)
    pg, postmaster = await durable(ready.database_url)
    print("PostgreSQL: " + ", ".join(f"{k}={v}" for k, v in pg.items()), flush=True)
    pool_cap = min(args.pool_cap, int(pg["max_connections"]) - CONNECTION_HEADROOM)
    if pool_cap < args.pool_cap:
        print(f"pool cap lowered to {pool_cap}: max_connections is {pg['max_connections']}")
    bench = Bench(args, ready, children, postmaster, pool_cap)
    bench.bench_db = await ensure_database(ready.database_url, "croupier_bench", fresh=True)
    bench.gw_db = await ensure_database(ready.database_url, "croupier_bench_gateway", fresh=True)
    bench.pam_db = await ensure_database(ready.database_url, "croupier_bench_pam", fresh=True)
    phases = await _phases(bench)
    for phase in phases:
        cpu_line = ", ".join(f"{k} {v:.2f}" for k, v in phase.cpu_ms.items())
        print(
            f"   {phase.key}: CPU ms per op: {cpu_line};"
            f" machine busy {phase.machine_busy:.0%}, steal {phase.steal:.0%}"
        )
        for note in phase.notes:
            print(f"   {phase.key}: {note}")
    return Run(args, pg, phases, started, pool_cap)


def _sweep(text: str) -> list[int]:
    """Return the sweep's worker counts from a comma-separated list ('' for none)."""
    counts = [int(part) for part in text.split(",") if part.strip()]
    if any(n < 1 for n in counts):
        raise argparse.ArgumentTypeError("every worker count must be at least 1")
    return counts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Return the command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per phase")
    parser.add_argument("--concurrency", type=int, default=32, help="workers in phases A to E and D-half")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per phase")
    parser.add_argument(
        "--sweep", type=_sweep, default=_sweep(DEFAULT_SWEEP), help="D's worker counts ('' for none)"
    )
    parser.add_argument(
        "--pool-cap", type=int, default=DEFAULT_POOL_CAP, help="most connections of a server's pool"
    )
    parser.add_argument(
        "--baseline-p50-ms", type=float, help="D@1's p50 to compare with (target: this plus 1 ms)"
    )
    parser.add_argument("--out", default="docs/benchmarks.md", help="document to write ('' for none)")
    parser.add_argument("--profile-dir", help="cProfile each server process into DIR/<kind>.prof")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the embedded servers, run the phases, stop everything, and write the report."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    profile_dir = Path(args.profile_dir).resolve() if args.profile_dir else None
    if profile_dir:
        profile_dir.mkdir(parents=True, exist_ok=True)
    children = Children(profile_dir)
    runner: Callable[[Awaitable[Run]], Run] = uvloop.run if uvloop is not None else asyncio.run  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="croupier-bench-") as tmp:
        print(f"starting embedded PostgreSQL and Redis in {tmp} ...")
        try:
            with backing_services(Settings(data_dir=Path(tmp))) as ready:
                try:
                    result = runner(run(args, ready, children))
                finally:
                    children.stop_all()
        except KeyboardInterrupt:
            print("interrupted; every server was stopped", file=sys.stderr)
            return 130
    failed = any("CHECK FAILED" in note for p in result.phases for note in p.notes)
    if args.out:
        write_doc(Path(args.out), results_block(result))
        print(f"wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
