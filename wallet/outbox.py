"""The outbox worker: delivers owed credits, rollbacks and debit cancellations until acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from wallet import ledger
from wallet.core import Wallet

log = logging.getLogger(__name__)


class OutboxWorker:
    """Polls the outbox; any number of nodes may run one, SKIP LOCKED keeps them apart."""

    def __init__(
        self, wallet: Wallet, *, interval_s: float = 0.5, batch: int = 50, lease_s: float = 30.0
    ) -> None:
        self.wallet = wallet
        self.interval_s = interval_s
        self.batch = batch
        self.lease_s = lease_s
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """Run the next pass now instead of at the next interval."""
        self._wake.set()

    async def run_once(self) -> int:
        """Deliver what is due now; return how many rows were finished."""
        finished = 0
        async with self.wallet.pool.acquire() as conn:
            items = await ledger.claim_due(conn, self.batch, self.lease_s)
            for item in items:
                rt = self.wallet.operators.get(item["operator"])
                if rt is None:
                    log.error("outbox row %s names unknown operator %s", item["id"], item["operator"])
                    continue
                timeout_s = rt.policy.call_timeout_s
                if await self.wallet.forwarder.deliver(conn, rt.backend, item, timeout_s):
                    finished += 1
            depth, age_s = await ledger.outbox_backlog(conn)
            dead = await ledger.outbox_dead(conn)
        metrics = self.wallet.forwarder.metrics
        metrics.outbox_dead.set(dead)
        metrics.outbox_depth.set(depth)
        metrics.outbox_oldest_age.set(age_s)
        return finished

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
