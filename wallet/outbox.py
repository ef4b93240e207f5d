"""The outbox worker: delivers owed credits, rollbacks and debit cancellations until acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from wallet import ledger
from wallet.core import Wallet
from wallet.db import Connection

log = logging.getLogger(__name__)


# A lease outlives the longest call it covers by this much: commit and clock skew between nodes.
LEASE_MARGIN_S = 5.0


class OutboxWorker:
    """Polls the outbox; any number of nodes may run one, SKIP LOCKED keeps them apart."""

    def __init__(
        self, wallet: Wallet, *, interval_s: float = 0.5, batch: int = 50, lease_s: float = 30.0
    ) -> None:
        self.wallet = wallet
        self.interval_s = interval_s
        self.batch = batch
        # Rows are claimed one at a time, so a lease covers one call, which its timeout bounds: a
        # lease can then never run out while its row is being delivered, however slow the operator.
        longest_call_s = max((rt.policy.call_timeout_s for rt in wallet.operators.values()), default=0.0)
        self.lease_s = max(lease_s, longest_call_s + LEASE_MARGIN_S)
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """Run the next pass now instead of at the next interval."""
        self._wake.set()

    async def run_once(self) -> int:
        """Deliver what is due now, up to `batch` rows; return how many rows were finished."""
        finished = 0
        async with self.wallet.pool.acquire() as conn:
            for _ in range(self.batch):
                if self._stopping:
                    break
                items = await ledger.claim_due(conn, 1, self.lease_s)
                if not items:
                    break
                finished += await self._deliver(conn, items[0])
            depth, age_s = await ledger.outbox_backlog(conn)
            dead = await ledger.outbox_dead(conn)
        metrics = self.wallet.forwarder.metrics
        metrics.outbox_dead.set(dead)
        metrics.outbox_depth.set(depth)
        metrics.outbox_oldest_age.set(age_s)
        return finished

    async def _deliver(self, conn: Connection, item: asyncpg.Record) -> int:
        rt = self.wallet.operators.get(item["operator"])
        if rt is None:
            log.error("outbox row %s names unknown operator %s", item["id"], item["operator"])
            return 0
        timeout_s = rt.policy.call_timeout_s
        return int(await self.wallet.forwarder.deliver(conn, rt.backend, item, timeout_s))

    def stop(self) -> None:
        """Finish the pass under way, then end `run`."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Deliver until stopped; database errors are logged and retried at the next pass."""
        while not self._stopping:
            try:
                await self.run_once()
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                log.warning("outbox pass failed: %s", exc)
            if self._stopping:
                break
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
