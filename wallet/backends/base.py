"""The one interface every operator wallet backend implements."""

from __future__ import annotations

from typing import Protocol

from wallet.db import Connection
from wallet.operations import Reply, Transfer


class OperatorWallet(Protocol):
    """Where the player's money lives: Croupier's own ledger, or the operator's wallet over HTTP."""

    # True: transfers run inside the ledger's database transaction and are never unknown.
    in_database: bool

    async def balance(self, conn: Connection, operator: str, player_id: str, currency: str) -> Reply:
        """Return the player's balance, or a refusal such as PLAYER_NOT_FOUND."""
        ...

    async def transfer(self, conn: Connection | None, transfer: Transfer, deadline_s: float) -> Reply:
        """Apply a transfer and return a definite reply, or raise UnavailableError if unknown."""
        ...

    async def ping(self) -> None:
        """Raise if the backend cannot serve requests now."""
        ...
