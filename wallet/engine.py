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

from wallet.backends.ledger import LedgerWallet
from wallet.backends.seamless import SeamlessWallet
from wallet.db import Connection
from wallet.decide import Decision, Item, decide
from wallet.errors import InProgressError
from wallet.metrics import Metrics
from wallet.operations import Kind, Operation, Result, State, Transfer
from wallet.policy import Capabilities, OperatorPolicy
from wallet.statements import KeyTakenError, prefetch, write

log = logging.getLogger(__name__)

# A batch that loses a race (a deadlock between nodes, a key taken meanwhile) is run again.
RACE_RETRIES = 8
_RACES = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


@dataclass(slots=True)
class Outcome:
    """What the engine decided for one operation: a final answer, or a transfer still to forward."""

    result: Result | None = None
    error: Exception | None = None
    op_id: int = 0
    transfer: Transfer | None = None
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
        window_s: float = 0.0,
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
        while items:
            # In a savepoint: the prefetch opens the rounds of every item, and an item the rules
            # leave to the one-by-one path must not find (or, if that path fails, leave) a round
            # this batch opened for it. Only the decided prefix is then prefetched again.
            savepoint = conn.transaction()
            await savepoint.start()
            try:
                snap = await prefetch(conn, items)
                decisions = decide(items, snap)
                if len(decisions) == len(items):
                    stored = await write(conn, decisions, snap)
                    await savepoint.commit()
                    return [_outcome(d, row) for d, row in zip(decisions, stored, strict=True)]
            except BaseException:
                # Whatever failed, the batch fails with it (or runs again); a rollback that fails
                # too must not hide why.
                with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                    await savepoint.rollback()
                raise
            await savepoint.rollback()
            items = items[: len(decisions)]
        return []


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
