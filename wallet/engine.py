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
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from wallet import ledger
from wallet.backends.ledger import LedgerWallet
from wallet.backends.seamless import SeamlessWallet
from wallet.db import Connection
from wallet.decide import ROUND_FIELDS, Decision, Item, Snapshot, account_key, decide, op_key, round_key
from wallet.errors import InProgressError
from wallet.metrics import Metrics
from wallet.operations import Kind, Operation, Result, State, transfer_payload
from wallet.policy import Capabilities, OperatorPolicy

log = logging.getLogger(__name__)

# A batch that loses a race (a deadlock between nodes, a key taken meanwhile) is run again.
RACE_RETRIES = 8
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
    # What a piece of work returned, for work that is not a wallet operation (the PAM's).
    value: Any = None


# The one-by-one path: the wallet core's own transaction, run here as a savepoint.
OneByOne = Callable[[Connection, "Job"], Awaitable[Outcome]]


# A piece of work run in a batch's transaction, such as recording the operator's answer.
Work = Callable[[Connection], Awaitable[Outcome]]


@dataclass(slots=True)
class Job:
    """One request waiting for the writer."""

    op: Operation | None
    caps: Capabilities
    policy: OperatorPolicy | None
    backend: object
    future: asyncio.Future[Outcome] = field(repr=False)
    work: Work | None = None

    def set_based(self) -> bool:
        """Return whether the batch statements decide this operation (bets and wins on our ledger)."""
        return (
            self.op is not None
            and self.op.kind in (Kind.DEBIT, Kind.CREDIT)
            and isinstance(self.backend, LedgerWallet | SeamlessWallet)
        )


class Engine:
    """One writer per node: batches by a window, applies each batch in one transaction."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        one_by_one: OneByOne | None = None,
        metrics: Metrics | None = None,
        *,
        window_s: float = 0.0005,
        max_batch: int = 256,
        writers: int = 1,
    ) -> None:
        self.pool = pool
        self.one_by_one = one_by_one
        self.metrics = metrics
        self.window_s = window_s
        self.max_batch = max_batch
        # One writer is the design; more let one batch prefetch while another commits, and keep
        # the one-by-one path (the seamless backend's) from queueing behind a single connection.
        # Batches of different writers meet in PostgreSQL as two nodes' do.
        self.writers = writers
        self._queue: asyncio.Queue[Job] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def submit(
        self, op: Operation, caps: Capabilities, policy: OperatorPolicy, backend: object
    ) -> Outcome:
        """Apply one operation in the next batch and return its outcome once committed."""
        return await self._submit(Job(op, caps, policy, backend, asyncio.get_running_loop().create_future()))

    async def run(self, work: Work) -> Outcome:
        """Run work in the next batch's transaction (in a savepoint) and return what it returned."""
        future = asyncio.get_running_loop().create_future()
        return await self._submit(Job(None, Capabilities(), None, None, future, work))

    async def _submit(self, job: Job) -> Outcome:
        if not self._tasks or self._stopping:
            # No writer running (tools, shutdown): a batch of one, applied here.
            await self._apply([job])
        else:
            self._queue.put_nowait(job)
        return await job.future

    def start(self) -> None:
        """Start the writers."""
        self._tasks = [
            asyncio.create_task(self._run(), name=f"ledger-engine-{n}") for n in range(self.writers)
        ]

    async def stop(self) -> None:
        """Let each writer finish its batch, apply what is still queued, and end."""
        self._stopping = True
        for _ in self._tasks:
            self._queue.put_nowait(_STOP)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        while not self._queue.empty():
            rest = [job for job in self._take(self.max_batch) if job is not _STOP]
            if rest:
                await self._apply(rest)

    async def _run(self) -> None:
        while True:
            batch = await self._gather()
            jobs = [job for job in batch if job is not _STOP]
            if jobs:
                await self._apply(jobs)
            if len(jobs) < len(batch):
                return

    def _take(self, most: int) -> list[Job]:
        """Take what is queued now, up to `most`."""
        batch: list[Job] = []
        while len(batch) < most and not self._queue.empty():
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
        for attempt in range(RACE_RETRIES):
            try:
                # The last try of a lone operation takes the one-by-one path, whose claim waits
                # on the UNIQUE key itself: two nodes' batches cannot keep voiding each other.
                set_based = not (len(jobs) == 1 and attempt == RACE_RETRIES - 1)
                outcomes = await self._transaction(jobs, set_based=set_based)
                break
            except (*_RACES, KeyTakenError) as exc:
                log.debug("ledger batch of %d lost a race, running it again: %s", len(jobs), exc)
                # A little jitter, so two nodes' batches do not meet again in step.
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311
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
            # Nothing was stored for it: the provider's retry is decided afresh, like any in-progress answer.
            _resolve(
                jobs[0], Outcome(error=InProgressError("the operation kept meeting concurrent ones; retry"))
            )
            return
        if self.metrics is not None:
            self.metrics.engine_batch_size.observe(len(jobs))
            self.metrics.engine_batch_seconds.observe(time.perf_counter() - started)
        for job, outcome in zip(jobs, outcomes, strict=True):
            _resolve(job, outcome)

    async def _transaction(self, jobs: Sequence[Job], *, set_based: bool = True) -> list[Outcome]:
        async with self.pool.acquire() as conn, conn.transaction():
            outcomes: list[Outcome] = []
            i = 0
            while i < len(jobs):
                end = i
                while set_based and end < len(jobs) and jobs[end].set_based():
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
            if job.work is not None:
                async with conn.transaction():
                    return await job.work(conn)
            # The wallet core's own transaction is a savepoint here.
            assert self.one_by_one is not None, "an engine for work only was given an operation"
            return await self.one_by_one(conn, job)
        except _RACES:
            raise
        except Exception as exc:  # noqa: BLE001 -- handed to its own request, the batch goes on
            # Its savepoint rolled back: nothing is stored for it (in progress, mismatch, a fault).
            return Outcome(error=exc)

    async def _set_based(self, conn: Connection, jobs: Sequence[Job]) -> list[Outcome]:
        """Prefetch, decide and write a run of bets and wins; return the outcomes of the decided prefix."""
        items = [
            Item(job.op, job.caps, job.policy, in_database=isinstance(job.backend, LedgerWallet))
            for job in jobs
            if job.op and job.policy
        ]
        snap = await _prefetch(conn, items)
        decisions = decide(items, snap)
        if not decisions:
            return []
        stored = await _write(conn, decisions, snap)
        return [_outcome(d, row) for d, row in zip(decisions, stored, strict=True)]


_STOP: Any = object()


def _resolve(job: Job, outcome: Outcome) -> None:
    if not job.future.done():
        job.future.set_result(outcome)


def _outcome(decision: Decision, stored: asyncpg.Record | None) -> Outcome:
    op = decision.item.op
    if stored is None:
        return Outcome(error=decision.error())
    if decision.transfer is not None:
        # A seamless intent is committed: the request now calls the operator.
        return Outcome(op_id=stored["id"], transfer=decision.transfer)
    if decision.state is State.APPLIED:
        result = Result(
            op.transaction_id, op.currency, decision.balance_minor, processed_at=stored["created_at"]
        )
        return Outcome(result)
    # A seamless operator's refusal for a rule carries its current balance, asked after the commit.
    return Outcome(error=decision.error(), needs_balance=decision.balance_minor is None)


def _unnest(first: int, types: Sequence[str]) -> str:
    """Return unnest() over array parameters $first, $first+1, ... of the given element types."""
    return "unnest(" + ", ".join(f"${first + n}::{t}[]" for n, t in enumerate(types)) + ")"


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Turn rows into one list per column, the shape unnest takes."""
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


_KEY = "provider, scope, kind, external_id"
_ROUND_KEY = "provider, operator, player_id, round_id"
_ROUND_OPENERS = ("text",) * 6 + ("boolean",) + ("text",) * 3
# One statement reads and locks everything a batch's decisions depend on: which keys exist, its
# rounds (opening the new ones), its accounts and its bettors' own limits. Rows are locked in key
# order, so batches of two nodes rarely deadlock (and a deadlock only runs the batch again).
_PREFETCH = f"""
WITH existing AS (
    SELECT o.provider, o.scope, o.kind, o.external_id FROM croupier.operations o
    JOIN {_unnest(1, ("text",) * 4)} AS k ({_KEY}) USING ({_KEY})
), openers AS (
    -- A round is opened by its first operation that is new: a repeat opens nothing.
    SELECT DISTINCT ON ({_ROUND_KEY}) {_ROUND_KEY}, game_id, currency, ends_when_settled
    FROM {_unnest(5, _ROUND_OPENERS)} WITH ORDINALITY
        AS v ({_ROUND_KEY}, game_id, currency, ends_when_settled, scope, kind, external_id, ord)
    WHERE (provider, scope, kind, external_id) NOT IN (SELECT * FROM existing)
    ORDER BY {_ROUND_KEY}, ord
), opened AS (
    INSERT INTO croupier.rounds ({_ROUND_KEY}, game_id, currency, ends_when_settled)
    SELECT * FROM openers
    ON CONFLICT ({_ROUND_KEY}) DO UPDATE SET state = rounds.state
    RETURNING *
), locked AS (
    SELECT r.* FROM croupier.rounds r
    JOIN {_unnest(15, ("text",) * 4)} AS k ({_ROUND_KEY}) USING ({_ROUND_KEY})
    WHERE (r.provider, r.operator, r.player_id, r.round_id) NOT IN (SELECT {_ROUND_KEY} FROM opened)
    ORDER BY {", ".join("r." + c.strip() for c in _ROUND_KEY.split(","))}
    FOR UPDATE OF r
), accounts AS (
    SELECT a.operator, a.player_id, a.currency, a.balance_minor, a.blocked FROM croupier.accounts a
    JOIN {_unnest(19, ("text",) * 3)} AS k (operator, player_id, currency)
        USING (operator, player_id, currency)
    ORDER BY a.operator, a.player_id, a.currency
    FOR UPDATE OF a
), unsettled AS (
    -- Bets still in flight at the operator in these rounds: a win that would be refused for want
    -- of a bet waits for them instead.
    SELECT DISTINCT o.provider, o.operator, o.player_id, o.round_id, o.state FROM croupier.operations o
    JOIN {_unnest(15, ("text",) * 4)} AS k ({_ROUND_KEY}) USING ({_ROUND_KEY})
    WHERE o.state IN ('pending', 'queued') AND o.kind = 'debit'
), limits AS (
    SELECT l.operator, l.player_id, {", ".join("l." + c for c in ledger.PLAYER_LIMIT_COLUMNS)},
        {ledger.BLOCKED_NOW.replace("block", "l.block")} AS blocked_now
    FROM croupier.player_limits l
    JOIN {_unnest(22, ("text",) * 2)} AS k (operator, player_id) USING (operator, player_id)
)
SELECT
    (SELECT coalesce(json_agg(existing), '[]') FROM existing) AS existing,
    (SELECT coalesce(json_agg(opened), '[]') FROM opened) AS opened,
    (SELECT coalesce(json_agg(locked), '[]') FROM locked) AS locked,
    (SELECT coalesce(json_agg(accounts), '[]') FROM accounts) AS accounts,
    (SELECT coalesce(json_agg(limits), '[]') FROM limits) AS limits,
    (SELECT coalesce(json_agg(unsettled), '[]') FROM unsettled) AS unsettled
"""


async def _prefetch(conn: Connection, items: Sequence[Item]) -> Snapshot:
    """Read and lock every row the batch's decisions depend on, in one statement."""
    keys = sorted({op_key(i.op) for i in items})
    # Only the first copy of a key may open a round: a later copy is a repeat (or a mismatch).
    firsts = {op_key(i.op): i for i in reversed(items)}.values()
    openers = [
        (
            *round_key(i.op),
            i.op.game_id,
            i.op.currency,
            i.caps.rounds_end_when_bets_settled,
            *op_key(i.op)[1:],
        )
        for i in firsts
        if i.creates_round()
    ]
    round_keys = sorted({round_key(i.op) for i in items})
    account_keys = sorted({account_key(i.op) for i in items})
    bettors = sorted({(i.op.operator, i.op.player_id) for i in items if i.op.kind is Kind.DEBIT})
    row = await conn.fetchrow(
        _PREFETCH,
        *_columns(keys, 4),
        *_columns(openers, 10),
        *_columns(round_keys, 4),
        *_columns(account_keys, 3),
        *_columns(bettors, 2),
    )
    assert row is not None
    rounds = {
        (r["provider"], r["operator"], r["player_id"], r["round_id"]): r
        for part in ("opened", "locked")
        for r in orjson.loads(row[part])
    }
    return Snapshot(
        existing={
            (e["provider"], e["scope"], e["kind"], e["external_id"]) for e in orjson.loads(row["existing"])
        },
        rounds=rounds,
        accounts={(a["operator"], a["player_id"], a["currency"]): a for a in orjson.loads(row["accounts"])},
        player_limits={(x["operator"], x["player_id"]): x for x in orjson.loads(row["limits"])},
        unsettled={
            ((u["provider"], u["operator"], u["player_id"], u["round_id"]), u["state"])
            for u in orjson.loads(row["unsettled"])
        },
    )


_OP_COLUMNS = (*ledger.OPERATION_COLUMNS, "reason", "balance_minor")
_OP_TYPES = ("uuid",) + ("text",) * 7 + ("bigint",) + ("text",) * 5 + ("bytea",) + ("text",) * 3 + ("bigint",)
_ENTRY_TYPES = ("text",) * 4 + ("bigint",)
_ROUND_TYPES = ("text",) * 4 + ("integer", "integer", "bigint", "integer", "bigint", "text")
_E = 1 + len(_OP_COLUMNS)
_A = _E + len(_ENTRY_TYPES)
_R = _A + 4
_OUTBOX_TYPES = ("text",) * 4 + ("text", "text", "text", "float8")
_O = _R + len(_ROUND_TYPES)
# One statement writes the decided operations (their keys: a key taken meanwhile is simply not
# returned), their entries, and the accounts' and rounds' new values.
_WRITE = f"""
WITH ops AS (
    INSERT INTO croupier.operations ({", ".join(_OP_COLUMNS)})
    SELECT {", ".join(_OP_COLUMNS)}
    FROM {_unnest(1, _OP_TYPES)} WITH ORDINALITY AS v ({", ".join(_OP_COLUMNS)}, ord)
    ORDER BY ord
    ON CONFLICT ({_KEY}) DO NOTHING
    RETURNING id, {_KEY}, operator, player_id, currency, created_at
), entries AS (
    INSERT INTO croupier.entries (operation_id, operator, player_id, currency, amount_minor)
    SELECT ops.id, ops.operator, ops.player_id, ops.currency, e.amount_minor
    FROM {_unnest(_E, _ENTRY_TYPES)} WITH ORDINALITY AS e ({_KEY}, amount_minor, ord)
    JOIN ops USING ({_KEY})
    ORDER BY e.ord
), accounts AS (
    UPDATE croupier.accounts a SET balance_minor = v.balance_minor
    FROM {_unnest(_A, ("text", "text", "text", "bigint"))} AS v (operator, player_id, currency, balance_minor)
    WHERE a.operator = v.operator AND a.player_id = v.player_id AND a.currency = v.currency
), rounds AS (
    UPDATE croupier.rounds r SET bets_count = v.bets_count, live_bets = v.live_bets,
        bets_minor = v.bets_minor, wins_count = v.wins_count, wins_minor = v.wins_minor,
        state = v.state,
        closed_at = CASE WHEN v.state = 'closed' THEN coalesce(r.closed_at, now()) ELSE r.closed_at END
    FROM {_unnest(_R, _ROUND_TYPES)}
        AS v ({_ROUND_KEY}, bets_count, live_bets, bets_minor, wins_count, wins_minor, state)
    WHERE r.provider = v.provider AND r.operator = v.operator AND r.player_id = v.player_id
        AND r.round_id = v.round_id
), outbox AS (
    INSERT INTO croupier.outbox (operation_id, operator, action, payload, due_at)
    SELECT ops.id, ops.operator, v.action, v.payload::jsonb, now() + make_interval(secs => v.due_s)
    FROM {_unnest(_O, _OUTBOX_TYPES)} AS v ({_KEY}, operator, action, payload, due_s)
    JOIN ops USING ({_KEY})
)
SELECT id, {_KEY}, created_at FROM ops
"""


async def _write(
    conn: Connection, decisions: Sequence[Decision], snap: Snapshot
) -> list[asyncpg.Record | None]:
    """Write the decided operations, their entries, outbox rows, balances and rounds; return the rows."""
    kept = [d for d in decisions if d.stored]
    rows = [
        (
            *ledger.operation_values(d.item.op, d.state),
            d.reason.value if d.reason is not None else None,
            d.stored_balance_minor,
        )
        for d in kept
    ]
    entries = [(*op_key(d.item.op), d.entry_minor) for d in kept if d.entry_minor is not None]
    outbox = [
        (
            *op_key(d.item.op),
            d.item.op.operator,
            d.outbox_action,
            orjson.dumps(transfer_payload(d.transfer)).decode(),
            d.item.policy.recovery_after_s,
        )
        for d in kept
        if d.transfer is not None
    ]
    balances = [(*key, snap.accounts[key]["balance_minor"]) for key in sorted(snap.touched_accounts)]
    counters = [(*key, *(snap.rounds[key][f] for f in ROUND_FIELDS)) for key in sorted(snap.touched_rounds)]
    inserted = await conn.fetch(
        _WRITE,
        *_columns(rows, len(_OP_COLUMNS)),
        *_columns(entries, len(_ENTRY_TYPES)),
        *_columns(balances, 4),
        *_columns(counters, len(_ROUND_TYPES)),
        *_columns(outbox, len(_OUTBOX_TYPES)),
    )
    if len(inserted) != len(rows):
        # Another transaction took one of these keys after the prefetch: the batch's decisions
        # (and what this statement wrote) are void, and the batch is decided again.
        raise KeyTakenError(f"{len(rows) - len(inserted)} of {len(rows)} keys were taken meanwhile")
    by_key = {(r["provider"], r["scope"], r["kind"], r["external_id"]): r for r in inserted}
    return [by_key[op_key(d.item.op)] if d.stored else None for d in decisions]
