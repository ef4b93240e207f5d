"""The finance job of `croupier serve`: reconciliation and GGR roll-ups, on one node at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg

from gateway.stuck_rounds import StuckRounds
from wallet.backends.seamless import SeamlessWallet
from wallet.core import Wallet
from wallet.db import Connection
from wallet.errors import UnavailableError
from wallet.reconciliation import Summary, run, run_ledger, seamless_lister
from wallet.reports import CLOSING_GRACE, ggr

log = logging.getLogger(__name__)

# The advisory lock that elects the node which runs the job ('CROU' 'RECN'), held for one pass.
LOCK_KEY = 0x43524F55_5245434E
# Closed days whose GGR roll-ups each pass makes sure of (a node down for a day misses none).
ROLL_UP_DAYS = 7


class ReconcileJob:
    """Reconciles each operator's last interval, once, whichever node gets the lock."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        wallet: Wallet,
        interval_s: float,
        horizon_s: float,
        stuck: StuckRounds | None = None,
    ) -> None:
        self.pool = pool
        self.stuck = stuck
        self.wallet = wallet
        self.interval_s = interval_s
        # A window is reconciled once it ended this long ago: whatever was in flight has settled.
        self.horizon_s = horizon_s
        self._stopping = asyncio.Event()

    async def run_once(self, now: datetime | None = None) -> list[Summary] | None:
        """Reconcile every operator's windows due by now; None if another node holds the job."""
        now = now or datetime.now(UTC)
        async with self.pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
                return None
            try:
                summaries = [summary async for summary in self._due(conn, now)]
                await self._roll_up(conn, now)
                return summaries
            finally:
                # Session-level: released here, since the pool does not reset connections.
                await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)

    async def _due(self, conn: Connection, now: datetime) -> AsyncIterator[Summary]:
        until = now - timedelta(seconds=self.horizon_s)
        for name, rt in self.wallet.operators.items():
            last = await conn.fetchval(
                "SELECT max(until) FROM croupier.reconciliations WHERE operator = $1 AND scheduled", name
            )
            since = last or until - timedelta(seconds=self.interval_s)
            if since >= until:
                continue
            metrics = self.wallet.forwarder.metrics
            settled = await self.stuck.settle(name, since, until, now) if self.stuck else []
            if not isinstance(rt.backend, SeamlessWallet):
                yield await run_ledger(
                    self.pool, name, since, until, now, scheduled=True, metrics=metrics, settled=settled
                )
                continue
            lister = seamless_lister(rt.backend)
            yield await run(
                self.pool,
                name,
                lister,
                since,
                until,
                now,
                self.horizon_s,
                scheduled=True,
                metrics=metrics,
                settled=settled,
            )

    async def _roll_up(self, conn: Connection, now: datetime) -> None:
        """Build the GGR roll-ups of the last closed days, so a report never waits to build them."""
        today = (now - CLOSING_GRACE).date()
        for name, rt in self.wallet.operators.items():
            if not rt.policy.play_money:
                await ggr(conn, name, today - timedelta(days=ROLL_UP_DAYS), today - timedelta(days=1), now)

    async def run(self) -> None:
        """Run a pass each interval until stopped; a failed pass is logged and tried at the next."""
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)
            if self._stopping.is_set():
                return
            try:
                for summary in await self.run_once() or []:
                    log.info(
                        "reconciliation %s: %d differences, %d left for a person",
                        summary.reconciliation_id,
                        len(summary.differences),
                        summary.unhealed,
                    )
            except (UnavailableError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                log.warning("reconciliation pass failed, trying at the next interval: %s", exc)

    def stop(self) -> None:
        """End `run` at once (a pass under way finishes first)."""
        self._stopping.set()
