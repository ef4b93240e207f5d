"""Benchmark the bet/win hot path against a one-row durable commit and a bare aiohttp endpoint.

Run from the repository root:

    python load/bench_wallet.py --seconds 8 --concurrency 32 --out docs/benchmarks.md

One embedded PostgreSQL (fsync and synchronous_commit on) and one embedded Redis serve every
phase. The servers under test run in their own spawned processes, each on its own event loop
(uvloop where available); the load generator runs in this process. Every phase runs for the same
time at the same concurrency, and the full-path figures are reported as ratios of the baselines
taken in the same run, because shared machines are noisy.
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import orjson
import redis.asyncio as aioredis
from measure import CpuMeter, Phase, Step, drive, find_pid, postgres_cpu_s, process_cpu_s, stat_fields
from servers import Children
from wallet_report import Run, results_block, write_doc

from gateway.runtime import backing_services, ensure_database
from gateway.sessions import SessionStore
from gateway.settings import OperatorSettings, Settings
from gateway.tokens import SessionTokens
from providers.base import ProviderConfig
from wallet.backends.ledger import open_account
from wallet.pam import store as pam_store
from wallet.policy import OperatorPolicy
from wallet.signing import Signer

try:
    import uvloop
except ImportError:  # pragma: no cover -- uvloop is not built for every platform
    uvloop = None  # type: ignore[assignment]

CURRENCY = "EUR"
OPENING_MINOR = 1_000_000_000  # 10 million EUR: no bet in a run of minutes is ever refused
BET, WIN = "1.00", "0.50"
SEAMLESS, LEDGER = "bench-seamless", "bench-ledger"
PROVIDER_KEY = "gen-bench"
PAM_KEY = "pam-bench"

log = logging.getLogger("bench")


# --- phases -------------------------------------------------------------------------------


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
    phase = Phase("A. one-row durable INSERT (asyncpg)", "ops", concurrency)
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
    phase = Phase("B. bare aiohttp endpoint", "req", concurrency)

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


@dataclass
class Player:
    """One worker's player on one operator."""

    operator: str
    player_id: str
    token: str


class Provider:
    """Signed generic-protocol calls, like GenericSimulator but without its call log or retries."""

    def __init__(self, base_url: str, signer: Signer, http: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self.signer = signer
        self.http = http
        self.timeout = aiohttp.ClientTimeout(total=10.0)

    async def call(self, operation: str, payload: dict[str, Any]) -> str | None:
        """Send one signed call; return None if answered OK, else the refusal code."""
        path = f"/providers/generic/{operation}"
        body = orjson.dumps(payload)
        headers = self.signer.headers("POST", path, body)
        headers["Content-Type"] = "application/json"
        async with self.http.post(
            self.base_url + path, data=body, headers=headers, timeout=self.timeout
        ) as resp:
            answer = orjson.loads(await resp.read())
        if answer.get("status") == "OK":
            return None
        return str(answer.get("code") or f"HTTP {resp.status}")

    def rounds(self, player: Player) -> Step:
        """Return a step that alternates a bet and its win, each round fresh."""
        state = {"round": "", "bet_next": True}

        async def step() -> str | None:
            base = {
                "operator": player.operator,
                "player_id": player.player_id,
                "currency": CURRENCY,
                "transaction_id": uuid.uuid4().hex,
                "game_id": "bench-slot",
            }
            if state["bet_next"]:
                state["round"] = uuid.uuid4().hex
                state["bet_next"] = False
                return await self.call(
                    "debit",
                    {**base, "session_token": player.token, "amount": BET, "round_id": state["round"]},
                )
            state["bet_next"] = True
            return await self.call(
                "credit", {**base, "amount": WIN, "round_id": state["round"], "credit_kind": "win"}
            )

        return step


async def full_path(
    name: str,
    provider: Provider,
    players: list[Player],
    seconds: float,
    warmup_s: float,
    meter: CpuMeter,
) -> Phase:
    """Run a full-path phase: each worker alternates bet and win for its own player."""
    phase = Phase(name, "ops", len(players))
    return await drive(phase, [provider.rounds(p) for p in players], seconds, warmup_s, meter)


def _pairs(rows: list[asyncpg.Record]) -> dict[str, int]:
    """Return two-column rows as a dict of text to integer."""
    return {str(r[0]): int(r[1]) for r in rows}


async def verify(
    phase: Phase, gateway_db: str, pam_db: str | None, operator: str, players: list[Player]
) -> None:
    """Check every operation applied and every balance equals opening plus ledger entries."""
    conn = await asyncpg.connect(gateway_db)
    try:
        states = _pairs(
            await conn.fetch(
                "SELECT state, count(*) FROM croupier.operations WHERE operator = $1 GROUP BY state",
                operator,
            )
        )
        sums = _pairs(
            await conn.fetch(
                "SELECT player_id, sum(amount_minor) FROM croupier.entries WHERE operator = $1"
                " GROUP BY player_id",
                operator,
            )
        )
        outbox = await conn.fetchval(
            "SELECT count(*) FROM croupier.outbox WHERE operator = $1 AND state <> 'cancelled'",
            operator,
        )
        held_sql = "SELECT player_id, balance_minor FROM croupier.accounts WHERE operator = $1"
        held = _pairs(await conn.fetch(held_sql, operator)) if pam_db is None else {}
    finally:
        await conn.close()
    if pam_db is not None:
        pam = await asyncpg.connect(pam_db)
        try:
            held = _pairs(await pam.fetch("SELECT player_id, balance_minor FROM pam.players"))
        finally:
            await pam.close()
    agree = sum(OPENING_MINOR + int(sums.get(p.player_id, 0)) == held.get(p.player_id) for p in players)
    not_applied = sum(n for state, n in states.items() if state != "applied")
    phase.notes.append(
        f"gateway operations by state: {states}; outbox rows not cancelled: {outbox};"
        f" balances equal to opening + ledger entries: {agree}/{len(players)}"
    )
    if not_applied or agree != len(players) or phase.refused or phase.errors:
        phase.notes.append("CHECK FAILED: something was refused, failed or disagrees")


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


async def _players(
    ready: Settings, gw_db: str, pam_db: str, concurrency: int
) -> tuple[list[Player], list[Player]]:
    """Open accounts and sessions: one player per worker on each operator."""
    assert ready.redis_url is not None
    client = aioredis.from_url(ready.redis_url)
    sessions = SessionStore(client, SessionTokens(ready.session_keys, ready.session_active_key))
    seamless, ledger = [], []
    try:
        async with (
            asyncpg.create_pool(pam_db, min_size=1, max_size=2) as pam_pool,
            asyncpg.create_pool(gw_db, min_size=1, max_size=2) as gw_pool,
        ):
            for n in range(concurrency):
                pid = f"bench-{n:04d}"
                await pam_store.set_player(pam_pool, pid, CURRENCY, OPENING_MINOR)
                s = await sessions.create(SEAMLESS, pid, CURRENCY, "generic", "bench-slot")
                seamless.append(Player(SEAMLESS, pid, s.token))
                async with gw_pool.acquire() as conn:
                    await open_account(conn, LEDGER, pid, CURRENCY, OPENING_MINOR)
                s = await sessions.create(LEDGER, pid, CURRENCY, "generic", "bench-slot")
                ledger.append(Player(LEDGER, pid, s.token))
    finally:
        await client.aclose()
    return seamless, ledger


async def run(args: argparse.Namespace, ready: Settings, children: Children) -> Run:
    """Run the four phases on one PostgreSQL and return what they measured."""
    assert ready.database_url is not None
    started = datetime.now(UTC)
    pg, postmaster = await durable(ready.database_url)
    print("PostgreSQL: " + ", ".join(f"{k}={v}" for k, v in pg.items()), flush=True)
    bench_db = await ensure_database(ready.database_url, "croupier_bench", fresh=True)
    gw_db = await ensure_database(ready.database_url, "croupier_bench_gateway", fresh=True)
    pam_db = await ensure_database(ready.database_url, "croupier_bench_pam", fresh=True)
    c, secs, warm = args.concurrency, args.seconds, args.warmup
    me = os.getpid()
    assert ready.redis_url is not None
    redis_pid = find_pid("redis-server", f"{urlsplit(ready.redis_url).port}")

    def meter(**servers: int) -> CpuMeter:
        sources: dict[str, Callable[[], float]] = {
            "load generator": lambda: process_cpu_s(me),
            "PostgreSQL": lambda: postgres_cpu_s(postmaster),
        }
        if redis_pid is not None:
            sources["Redis"] = lambda: process_cpu_s(redis_pid)
        for name, pid in servers.items():
            sources[name] = lambda pid=pid: process_cpu_s(pid)  # type: ignore[misc]
        return CpuMeter(sources)

    def done(phase: Phase) -> Phase:
        print("   " + phase.line(), flush=True)
        return phase

    print(f"A: one-row durable INSERT, {c} connections, {secs:g} s ...", flush=True)
    phases = [done(await baseline_insert(bench_db, c, secs, warm, meter()))]

    connector = aiohttp.TCPConnector(limit=c, limit_per_host=c, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector) as http:
        print(f"B: bare aiohttp endpoint, {c} concurrent clients, {secs:g} s ...", flush=True)
        bare_url = await children.start("bare", None) + "/ping"
        cpu = meter(server=children.pids["bare"])
        phases.append(done(await baseline_http(bare_url, http, c, secs, warm, cpu)))

        from wallet.pam.settings import PamSettings  # noqa: PLC0415

        pam_secret, provider_secret = secrets.token_bytes(32), secrets.token_bytes(32)
        pam_url = await children.start("pam", PamSettings(pam_db, {PAM_KEY: pam_secret}))
        gateway_settings = dataclasses.replace(
            ready,
            database_url=gw_db,
            operators={
                SEAMLESS: OperatorSettings(
                    OperatorPolicy(SEAMLESS), "seamless", pam_url, PAM_KEY, pam_secret
                ),
                LEDGER: OperatorSettings(OperatorPolicy(LEDGER)),
            },
            providers={"generic": ProviderConfig("generic", {PROVIDER_KEY: provider_secret})},
            # As many connections as baseline A, plus two for the outbox worker and health checks.
            pool_size=c + 2,
        )
        gateway_url = await children.start("gateway", gateway_settings)
        seamless, ledger = await _players(ready, gw_db, pam_db, c)
        provider = Provider(gateway_url, Signer(PROVIDER_KEY, provider_secret), http)
        cpu = meter(server=children.pids["gateway"], PAM=children.pids["pam"])

        print(f"C: full path, seamless backend via PAM, {c} workers, {secs:g} s ...", flush=True)
        phase = await full_path("C. full path, seamless -> PAM", provider, seamless, secs, warm, cpu)
        await verify(phase, gw_db, pam_db, SEAMLESS, seamless)
        phases.append(done(phase))

        print(f"D: full path, ledger backend, {c} workers, {secs:g} s ...", flush=True)
        phase = await full_path("D. full path, ledger backend", provider, ledger, secs, warm, cpu)
        await verify(phase, gw_db, None, LEDGER, ledger)
        phases.append(done(phase))
    for phase in phases:
        cpu_line = ", ".join(f"{k} {v:.2f}" for k, v in phase.cpu_ms.items())
        print(
            f"   {phase.name[:1]}: CPU ms per op: {cpu_line};"
            f" machine busy {phase.machine_busy:.0%}, steal {phase.steal:.0%}"
        )
        for note in phase.notes:
            print(f"   {phase.name[:1]}: {note}")
    return Run(args, pg, phases, started)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Return the command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per phase")
    parser.add_argument("--concurrency", type=int, default=32, help="workers in every phase")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per phase")
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
