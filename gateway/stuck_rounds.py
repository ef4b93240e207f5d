"""Stuck rounds: found past each provider's horizon, settled by the protocol's own rule, else reported."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from providers.base import Adapter
from providers.context import ProviderContext
from wallet.core import Wallet
from wallet.errors import WalletError
from wallet.reconcile import Action, Difference, Kind
from wallet.stuck import StuckRound, open_rounds

# A finding with what became of it: settled, or reported for a person.
Finding = tuple[Difference, str]


class StuckRounds:
    """Finds an operator's stuck rounds for a reconciliation window and settles what its protocol allows."""

    def __init__(
        self, pool: asyncpg.Pool, wallet: Wallet, adapters: dict[str, Adapter], ctx: ProviderContext
    ) -> None:
        self.pool = pool
        self.wallet = wallet
        self.adapters = adapters
        self.ctx = ctx

    async def settle(self, operator: str, since: datetime, until: datetime, now: datetime) -> list[Finding]:
        """Settle or report each round opened one horizon before the window and still open now."""
        found: list[Finding] = []
        for name, adapter in sorted(self.adapters.items()):
            horizon = timedelta(seconds=adapter.stuck_horizon_s())
            # Shifted by the horizon, windows that follow each other look at each round once.
            opened_until = min(until, now) - horizon
            if since - horizon >= opened_until:
                continue
            async with self.pool.acquire() as conn:
                rounds = await open_rounds(conn, operator, name, since - horizon, opened_until)
            found.extend([await self._one(adapter, stuck, horizon) for stuck in rounds])
        return found

    async def _one(self, adapter: Adapter, stuck: StuckRound, horizon: timedelta) -> Finding:
        past = (
            f"open since {stuck.opened_at.isoformat()}, past {adapter.name}'s {horizon.total_seconds():.0f} s"
        )
        operations = await adapter.settle_stuck(stuck, self.ctx)
        if not operations:
            reason = f"{past}; its protocol gives the gateway no rule to settle it"
            return _finding(stuck, Action.REPORT, reason), "reported"
        try:
            for op in operations:
                # Through the core like any provider call: applied once, by the same rules.
                await self.wallet.execute(op, adapter.capabilities)
        except WalletError as exc:
            reason = f"{past}; settling it by its protocol's rule failed: {exc}"
            return _finding(stuck, Action.SETTLE_ROUND, reason), "reported"
        done = ", ".join(f"{op.kind.value} {op.external_id}" for op in operations)
        return _finding(
            stuck, Action.SETTLE_ROUND, f"{past}; settled by its protocol's rule: {done}"
        ), "settled"


def _finding(stuck: StuckRound, action: Action, reason: str) -> Difference:
    return Difference(Kind.STUCK_ROUND, None, action, reason, subject=stuck.subject)
