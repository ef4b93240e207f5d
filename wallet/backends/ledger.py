"""The 'ledger' backend: Croupier keeps the balances itself, in the same PostgreSQL transaction."""

from __future__ import annotations

from wallet.db import Connection
from wallet.operations import Reply, ReplyStatus, Transfer, TransferType

_TAKE = """
UPDATE croupier.accounts SET balance_minor = balance_minor - $4
 WHERE operator = $1 AND player_id = $2 AND currency = $3 AND balance_minor >= $4 {extra}
RETURNING balance_minor
"""
_GIVE = """
UPDATE croupier.accounts SET balance_minor = balance_minor + $4
 WHERE operator = $1 AND player_id = $2 AND currency = $3
RETURNING balance_minor
"""


class LedgerWallet:
    """Balances in `croupier.accounts`; the row lock serialises one player's bets in PostgreSQL."""

    in_database = True

    async def balance(self, conn: Connection, operator: str, player_id: str, currency: str) -> Reply:
        """Return the balance of the player's account in that currency."""
        row = await conn.fetchrow(
            "SELECT balance_minor FROM croupier.accounts"
            " WHERE operator = $1 AND player_id = $2 AND currency = $3",
            operator,
            player_id,
            currency,
        )
        if row is None:
            return await self._missing(conn, operator, player_id)
        return Reply(ReplyStatus.OK, row["balance_minor"])

    async def transfer(self, conn: Connection | None, transfer: Transfer, deadline_s: float) -> Reply:
        """Move the money inside the caller's transaction; never unknown."""
        del deadline_s  # a local transaction has no remote deadline
        assert conn is not None, "the ledger backend runs inside the caller's transaction"
        args = (transfer.operator, transfer.player_id, transfer.currency, transfer.amount_minor)
        takes = transfer.type is TransferType.DEBIT or (
            transfer.type is TransferType.ROLLBACK and transfer.reverses is TransferType.CREDIT
        )
        if takes:
            # Only a bet is refused for a blocked player; taking back a credit is not a bet.
            extra = "AND NOT blocked" if transfer.type is TransferType.DEBIT else ""
            balance = await conn.fetchval(_TAKE.format(extra=extra), *args)
        else:
            balance = await conn.fetchval(_GIVE, *args)
        if balance is not None:
            return Reply(ReplyStatus.OK, balance)
        return await self._diagnose(conn, transfer)

    async def _diagnose(self, conn: Connection, transfer: Transfer) -> Reply:
        row = await conn.fetchrow(
            "SELECT balance_minor, blocked FROM croupier.accounts"
            " WHERE operator = $1 AND player_id = $2 AND currency = $3",
            transfer.operator,
            transfer.player_id,
            transfer.currency,
        )
        if row is None:
            return await self._missing(conn, transfer.operator, transfer.player_id)
        if row["blocked"] and transfer.type is TransferType.DEBIT:
            return Reply(ReplyStatus.PLAYER_BLOCKED, row["balance_minor"])
        return Reply(ReplyStatus.INSUFFICIENT_FUNDS, row["balance_minor"])

    async def _missing(self, conn: Connection, operator: str, player_id: str) -> Reply:
        exists = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM croupier.accounts WHERE operator = $1 AND player_id = $2)",
            operator,
            player_id,
        )
        return Reply(ReplyStatus.CURRENCY_MISMATCH if exists else ReplyStatus.PLAYER_NOT_FOUND)

    async def ping(self) -> None:
        """Return at once: this backend is the ledger's own database."""


_ADJUST = (
    "INSERT INTO croupier.entries (kind, operator, player_id, currency, amount_minor, note)"
    " VALUES ('adjustment', $1, $2, $3, $4, $5)"
)


async def open_account(
    conn: Connection,
    operator: str,
    player_id: str,
    currency: str,
    balance_minor: int,
    *,
    blocked: bool = False,
    note: str = "account opened or reset",
) -> None:
    """Create or reset a player's account on the ledger backend, the change booked as an entry."""
    async with conn.transaction():
        before = await conn.fetchval(
            "SELECT balance_minor FROM croupier.accounts"
            " WHERE operator = $1 AND player_id = $2 AND currency = $3 FOR UPDATE",
            operator,
            player_id,
            currency,
        )
        await conn.execute(
            "INSERT INTO croupier.accounts (operator, player_id, currency, balance_minor, blocked)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (operator, player_id, currency)"
            " DO UPDATE SET balance_minor = EXCLUDED.balance_minor, blocked = EXCLUDED.blocked",
            operator,
            player_id,
            currency,
            balance_minor,
            blocked,
        )
        # No balance moves without an entry: the reset is booked as the difference it makes.
        delta = balance_minor - (before or 0)
        if delta:
            await conn.execute(_ADJUST, operator, player_id, currency, delta, note)


async def open_play_money(
    conn: Connection, operator: str, player_id: str, currency: str, balance_minor: int
) -> None:
    """Give a demo player play money the first time, booked as an entry; later launches keep what it has."""
    async with conn.transaction():
        created = await conn.fetchval(
            "INSERT INTO croupier.accounts (operator, player_id, currency, balance_minor)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (operator, player_id, currency) DO NOTHING"
            " RETURNING true",
            operator,
            player_id,
            currency,
            balance_minor,
        )
        if created and balance_minor:
            await conn.execute(_ADJUST, operator, player_id, currency, balance_minor, "play money")
