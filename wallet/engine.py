"""The ledger engine: one writer per node applies the operations of a short window in one transaction.

Requests hand their operation to the writer and await its outcome. The writer gathers what
arrives within a window (bounded by time and by count), then, in one transaction and in arrival
order: bets and wins on Croupier's own ledger are prefetched with set-based statements, decided in
pure Python (`wallet.decide`) and written back with one statement per table; every other
operation takes the one-by-one path, in a savepoint of the same transaction. Outcomes are handed
back only after the commit. The UNIQUE constraint on the operations' key still decides every
race: a key another node took between the prefetch and the write aborts the batch, which is run
again and then finds the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from wallet import ledger
from wallet.backends.ledger import LedgerWallet
from wallet.db import Connection
from wallet.decide import ROUND_FIELDS, Decision, Item, Snapshot, account_key, decide, op_key, round_key
from wallet.errors import WalletError
from wallet.metrics import Metrics
from wallet.operations import Kind, Operation, Result, State
from wallet.policy import Capabilities, OperatorPolicy

log = logging.getLogger(__name__)

# A batch that loses a race (a deadlock between nodes, a key taken meanwhile) is run again.
RACE_RETRIES = 5
_RACES = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


class KeyTakenError(Exception):
    """A key the batch prefetched as new was inserted meanwhile by another transaction."""


@dataclass(slots=True)
class Outcome:
    """What the engine decided for one operation: a final answer, or a transfer still to forward."""

    result: Result | None = None
    error: Exception | None = None
    op_id: int = 0
    transfer: Any = None
    needs_balance: bool = False


# The one-by-one path: the wallet core's own transaction, run here as a savepoint.
OneByOne = Callable[[Connection, "Job"], Awaitable[Outcome]]


@dataclass(slots=True)
class Job:
    """One request waiting for the writer."""

    op: Operation
    caps: Capabilities
    policy: OperatorPolicy
    backend: object
    future: asyncio.Future[Outcome] = field(repr=False)

    def set_based(self) -> bool:
        """Return whether the batch statements decide this operation (bets and wins on our ledger)."""
        return self.op.kind in (Kind.DEBIT, Kind.CREDIT) and isinstance(self.backend, LedgerWallet)


class Engine:
    """One writer per node: batches by a window, applies each batch in one transaction."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        one_by_one: OneByOne,
        metrics: Metrics,
        *,
        window_s: float = 0.0005,
        max_batch: int = 256,
    ) -> None:
        self.pool = pool
        self.one_by_one = one_by_one
        self.metrics = metrics
        self.window_s = window_s
        self.max_batch = max_batch
        self._queue: asyncio.Queue[Job] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def submit(
        self, op: Operation, caps: Capabilities, policy: OperatorPolicy, backend: object
    ) -> Outcome:
        """Apply one operation in the next batch and return its outcome once committed."""
        job = Job(op, caps, policy, backend, asyncio.get_running_loop().create_future())
        if self._task is None or self._stopping:
            # No writer running (tools, shutdown): a batch of one, applied here.
            await self._apply([job])
        else:
            self._queue.put_nowait(job)
        return await job.future

    def start(self) -> None:
        """Start the writer."""
        self._task = asyncio.create_task(self._run(), name="ledger-engine")

    async def stop(self) -> None:
        """Apply what is queued, then end the writer."""
        self._stopping = True
        if self._task is None:
            return
        self._queue.put_nowait(_STOP)
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        stopping = False
        while not (stopping and self._queue.empty()):
            batch = await self._gather() if not stopping else self._drain()
            jobs = [job for job in batch if job is not _STOP]
            stopping = stopping or len(jobs) < len(batch)
            if jobs:
                await self._apply(jobs)

    def _drain(self) -> list[Job]:
        """Take what is still queued at shutdown, up to the batch's size."""
        batch: list[Job] = []
        while len(batch) < self.max_batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _gather(self) -> list[Job]:
        """Wait for one job, then take what arrives within the window, up to the batch's size."""
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.window_s
        while len(batch) < self.max_batch and batch[-1] is not _STOP:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), left))
            except TimeoutError:
                break
        return batch

    async def _apply(self, jobs: Sequence[Job]) -> None:
        """Apply a batch and hand each job its outcome; a failing batch is split so only the culprit fails."""
        started = time.perf_counter()
        for _attempt in range(RACE_RETRIES):
            try:
                outcomes = await self._transaction(jobs)
                break
            except (*_RACES, KeyTakenError) as exc:
                log.debug("ledger batch of %d lost a race, running it again: %s", len(jobs), exc)
            except Exception as exc:  # noqa: BLE001 -- the writer must outlive any one bad operation
                if len(jobs) == 1:
                    _resolve(jobs[0], Outcome(error=exc))
                    return
                log.warning("ledger batch of %d failed, applying one by one: %s", len(jobs), exc)
                for job in jobs:
                    await self._apply([job])
                return
        else:
            if len(jobs) > 1:
                for job in jobs:
                    await self._apply([job])
                return
            _resolve(jobs[0], Outcome(error=asyncpg.DeadlockDetectedError("the batch kept losing races")))
            return
        self.metrics.engine_batch_size.observe(len(jobs))
        self.metrics.engine_batch_seconds.observe(time.perf_counter() - started)
        for job, outcome in zip(jobs, outcomes, strict=True):
            _resolve(job, outcome)

    async def _transaction(self, jobs: Sequence[Job]) -> list[Outcome]:
        async with self.pool.acquire() as conn, conn.transaction():
            outcomes: list[Outcome] = []
            i = 0
            while i < len(jobs):
                end = i
                while end < len(jobs) and jobs[end].set_based():
                    end += 1
                if end > i:
                    done = await self._set_based(conn, jobs[i:end])
                    outcomes += done
                    i += len(done)
                    if i == end:
                        continue
                # This job needs the one-by-one path (a repeat, an unknown account, a rollback...):
                # it runs here, in arrival order, in a savepoint of its own.
                outcomes.append(await self._one(conn, jobs[i]))
                i += 1
            return outcomes

    async def _one(self, conn: Connection, job: Job) -> Outcome:
        try:
            return await self.one_by_one(conn, job)
        except WalletError as exc:
            # The savepoint rolled back: nothing is stored for it (in progress, mismatch, bad input).
            return Outcome(error=exc)

    async def _set_based(self, conn: Connection, jobs: Sequence[Job]) -> list[Outcome]:
        """Prefetch, decide and write a run of bets and wins; return the outcomes of the decided prefix."""
        items = [Item(job.op, job.caps, job.policy) for job in jobs]
        snap = await _prefetch(conn, items)
        decisions = decide(items, snap)
        if not decisions:
            return []
        created = await _write(conn, decisions, snap)
        return [_outcome(d, at) for d, at in zip(decisions, created, strict=True)]


_STOP: Any = object()


def _resolve(job: Job, outcome: Outcome) -> None:
    if not job.future.done():
        job.future.set_result(outcome)


def _outcome(decision: Decision, created_at: datetime) -> Outcome:
    op = decision.item.op
    if decision.state is State.APPLIED:
        return Outcome(
            Result(op.transaction_id, op.currency, decision.balance_minor, processed_at=created_at)
        )
    return Outcome(error=decision.error())


def _unnest(columns: int, types: Sequence[str]) -> str:
    return "unnest(" + ", ".join(f"${n + 1}::{t}[]" for n, t in zip(range(columns), types, strict=True)) + ")"


_EXISTING = (
    "SELECT provider, scope, kind, external_id FROM croupier.operations"
    " WHERE (provider, scope, kind, external_id) IN (SELECT * FROM " + _unnest(4, ("text",) * 4) + ")"
)
_ROUND_KEY = "provider, operator, player_id, round_id"
# New rounds are opened and every round locked in key order, so two batches never deadlock here.
_OPEN_ROUNDS = (
    f"INSERT INTO croupier.rounds ({_ROUND_KEY}, game_id, currency, ends_when_settled)"
    " SELECT * FROM "
    + _unnest(7, ("text",) * 6 + ("boolean",))
    + f" AS v ORDER BY 1, 2, 3, 4 ON CONFLICT ({_ROUND_KEY}) DO UPDATE SET state = rounds.state RETURNING *"
)
_LOCK_ROUNDS = (
    f"SELECT * FROM croupier.rounds WHERE ({_ROUND_KEY}) IN (SELECT * FROM "
    + _unnest(4, ("text",) * 4)
    + f") ORDER BY {_ROUND_KEY} FOR UPDATE"
)
_LOCK_ACCOUNTS = (
    "SELECT operator, player_id, currency, balance_minor, blocked FROM croupier.accounts"
    " WHERE (operator, player_id, currency) IN (SELECT * FROM "
    + _unnest(3, ("text",) * 3)
    + ") ORDER BY operator, player_id, currency FOR UPDATE"
)
_PLAYER_LIMITS = (
    "SELECT operator, player_id, "
    + ", ".join(ledger.PLAYER_LIMIT_COLUMNS)
    + f", {ledger.BLOCKED_NOW} AS blocked_now FROM croupier.player_limits"
    " WHERE (operator, player_id) IN (SELECT * FROM " + _unnest(2, ("text", "text")) + ")"
)


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Turn rows into one list per column, the shape unnest takes."""
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


async def _prefetch(conn: Connection, items: Sequence[Item]) -> Snapshot:
    """Read and lock every row the batch's decisions depend on, four statements for the lot."""
    keys = sorted({op_key(i.op) for i in items})
    existing = {tuple(r) for r in await conn.fetch(_EXISTING, *_columns(keys, 4))}
    # A repeat opens nothing: its replay (or mismatch) must leave the rounds as they are.
    opening = {round_key(i.op): i for i in items if i.creates_round() and op_key(i.op) not in existing}
    rows: list[asyncpg.Record] = []
    if opening:
        values = [
            (*key, i.op.game_id, i.op.currency, i.caps.rounds_end_when_bets_settled)
            for key, i in sorted(opening.items())
        ]
        rows += await conn.fetch(_OPEN_ROUNDS, *_columns(values, 7))
    others = sorted({round_key(i.op) for i in items} - opening.keys())
    if others:
        rows += await conn.fetch(_LOCK_ROUNDS, *_columns(others, 4))
    rounds = {(r["provider"], r["operator"], r["player_id"], r["round_id"]): dict(r) for r in rows}
    accounts_keys = sorted({account_key(i.op) for i in items})
    accounts = {
        (r["operator"], r["player_id"], r["currency"]): dict(r)
        for r in await conn.fetch(_LOCK_ACCOUNTS, *_columns(accounts_keys, 3))
    }
    bettors = sorted({(i.op.operator, i.op.player_id) for i in items if i.op.kind is Kind.DEBIT})
    player_limits = {}
    if bettors:
        player_limits = {
            (r["operator"], r["player_id"]): r
            for r in await conn.fetch(_PLAYER_LIMITS, *_columns(bettors, 2))
        }
    return Snapshot(existing, rounds, accounts, player_limits)  # type: ignore[arg-type]


_OP_COLUMNS = (*ledger.OPERATION_COLUMNS, "reason", "balance_minor")
_OP_TYPES = (
    "uuid",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "bigint",
    "text",
    "text",
    "text",
    "text",
    "text",
    "bytea",
    "text",
    "text",
    "text",
    "bigint",
)
_INSERT_OPS = (
    f"INSERT INTO croupier.operations ({', '.join(_OP_COLUMNS)}) SELECT * FROM "
    + _unnest(len(_OP_COLUMNS), _OP_TYPES)
    + " ON CONFLICT (provider, scope, kind, external_id) DO NOTHING"
    " RETURNING id, provider, scope, kind, external_id, created_at"
)
_INSERT_ENTRIES = (
    "INSERT INTO croupier.entries (operation_id, operator, player_id, currency, amount_minor)"
    " SELECT * FROM " + _unnest(5, ("bigint", "text", "text", "text", "bigint"))
)
_UPDATE_ACCOUNTS = (
    "UPDATE croupier.accounts a SET balance_minor = v.balance_minor FROM "
    + _unnest(4, ("text", "text", "text", "bigint"))
    + " AS v (operator, player_id, currency, balance_minor)"
    " WHERE a.operator = v.operator AND a.player_id = v.player_id AND a.currency = v.currency"
)
_UPDATE_ROUNDS = (
    "UPDATE croupier.rounds r SET bets_count = v.bets_count, live_bets = v.live_bets,"
    " bets_minor = v.bets_minor, wins_count = v.wins_count, wins_minor = v.wins_minor, state = v.state,"
    " closed_at = CASE WHEN v.state = 'closed' THEN coalesce(r.closed_at, now()) ELSE r.closed_at END"
    " FROM "
    + _unnest(10, ("text",) * 4 + ("integer", "integer", "bigint", "integer", "bigint", "text"))
    + " AS v (provider, operator, player_id, round_id, bets_count, live_bets, bets_minor, wins_count,"
    " wins_minor, state)"
    " WHERE r.provider = v.provider AND r.operator = v.operator AND r.player_id = v.player_id"
    " AND r.round_id = v.round_id"
)


async def _write(conn: Connection, decisions: Sequence[Decision], snap: Snapshot) -> list[datetime]:
    """Write the decided operations, their entries, balances and rounds; return each one's time."""
    rows = [
        (
            *ledger.operation_values(d.item.op, d.state),
            d.reason.value if d.reason is not None else None,
            d.stored_balance_minor,
        )
        for d in decisions
    ]
    inserted = await conn.fetch(_INSERT_OPS, *_columns(rows, len(_OP_COLUMNS)))
    if len(inserted) != len(rows):
        # Another transaction took one of these keys after the prefetch: decide the batch again.
        raise KeyTakenError(f"{len(rows) - len(inserted)} of {len(rows)} keys were taken meanwhile")
    by_key = {(r["provider"], r["scope"], r["kind"], r["external_id"]): r for r in inserted}
    stored = [by_key[op_key(d.item.op)] for d in decisions]
    entries = [
        (row["id"], d.item.op.operator, d.item.op.player_id, d.item.op.currency, d.entry_minor)
        for d, row in zip(decisions, stored, strict=True)
        if d.entry_minor is not None
    ]
    if entries:
        await conn.execute(_INSERT_ENTRIES, *_columns(entries, 5))
    if snap.touched_accounts:
        balances = [(*key, snap.accounts[key]["balance_minor"]) for key in sorted(snap.touched_accounts)]
        await conn.execute(_UPDATE_ACCOUNTS, *_columns(balances, 4))
    if snap.touched_rounds:
        counters = [
            (*key, *(snap.rounds[key][f] for f in ROUND_FIELDS)) for key in sorted(snap.touched_rounds)
        ]
        await conn.execute(_UPDATE_ROUNDS, *_columns(counters, 10))
    return [row["created_at"] for row in stored]
