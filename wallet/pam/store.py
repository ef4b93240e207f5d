"""All SQL of the reference operator wallet: balances, exactly-once money operations, listing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias

import asyncpg
import iso4217
import orjson

from wallet.db import Connection, create_pool
from wallet.migrate import migrate
from wallet.operations import ReplyStatus

if TYPE_CHECKING:
    from datetime import datetime

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
OpType = Literal["debit", "credit", "rollback"]

ISO_CURRENCIES = frozenset(currency.value for currency in iso4217.Currency)


# The reference wallet answers with the protocol's own closed list of statuses.
Status = ReplyStatus


class UnknownCurrencyError(Exception):
    """The currency is neither an ISO 4217 code nor the player's own; nothing is written."""


@dataclass(frozen=True, slots=True)
class Money:
    """One validated debit, credit or rollback request."""

    op: OpType
    transaction_id: str
    player_id: str
    currency: str
    amount_minor: int
    round_id: str
    game_id: str | None
    provider: str
    kind: str | None = None
    reference_transaction_id: str | None = None

    def digest(self) -> bytes:
        """Return the sha256 of every field a retry has to repeat unchanged."""
        fields = (
            self.op, self.player_id, self.currency, self.amount_minor, self.round_id,
            self.game_id, self.provider, self.kind, self.reference_transaction_id,
        )  # fmt: skip
        return hashlib.sha256(orjson.dumps(fields)).digest()


@dataclass(frozen=True, slots=True)
class Answer:
    """What the wallet answers: a status and the player's balance in `currency`."""

    status: Status
    currency: str
    balance_minor: int
    replay: bool = False


@dataclass(frozen=True, slots=True)
class Player:
    """A player account."""

    player_id: str
    currency: str
    balance_minor: int
    blocked: bool


@dataclass(frozen=True, slots=True)
class Entry:
    """One transaction as the reconciliation listing shows it."""

    transaction_id: str
    type: str
    player_id: str
    currency: str
    amount_minor: int
    round_id: str
    reference_transaction_id: str | None
    state: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How a fresh money request ended, as stored on its row."""

    status: Status
    currency: str
    balance_minor: int
    amount_minor: int


_INSERT = """
INSERT INTO pam.transactions (transaction_id, type, player_id, currency, amount_minor, round_id,
    game_id, provider, kind, reference_transaction_id, request_hash, state, status)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (transaction_id) DO NOTHING
RETURNING seq
"""
_SETTLE = """
UPDATE pam.transactions SET state = $2, status = $3, balance_after = $4, amount_minor = $5
WHERE transaction_id = $1
"""
_STORED = """
SELECT type, state, status, request_hash, player_id, currency, amount_minor
FROM pam.transactions WHERE transaction_id = $1
"""
_MARK_ROLLED_BACK = "UPDATE pam.transactions SET state = 'rolled_back' WHERE transaction_id = $1"
_PLAYER = "SELECT player_id, currency, balance_minor, blocked FROM pam.players WHERE player_id = $1"
_HOLDS_CURRENCY = "SELECT true FROM pam.players WHERE player_id = $1 AND currency = $2"
# The conditional UPDATE is what serialises a player's money: the row lock orders concurrent
# requests and the WHERE clause refuses an overdraft, so no balance is ever decided in Python.
_MOVE = """
UPDATE pam.players SET balance_minor = balance_minor + $3
WHERE player_id = $1 AND currency = $2 AND balance_minor + $3 >= 0 AND NOT (blocked AND $4)
RETURNING balance_minor
"""
_SET_PLAYER = """
INSERT INTO pam.players (player_id, currency, balance_minor, blocked)
VALUES ($1, $2, $3, coalesce($4, false))
ON CONFLICT (player_id) DO UPDATE SET currency = excluded.currency,
    balance_minor = excluded.balance_minor, blocked = coalesce($4, players.blocked)
RETURNING player_id, currency, balance_minor, blocked
"""
# Refusals are left out: they moved no money, and the listing's states are the three that did.
_LIST = """
SELECT transaction_id, type, player_id, currency, amount_minor, round_id,
    reference_transaction_id, state, created_at, seq
FROM pam.transactions
WHERE seq > $1 AND state <> 'rejected'
    AND ($2::timestamptz IS NULL OR created_at >= $2)
    AND ($3::timestamptz IS NULL OR created_at < $3)
ORDER BY seq LIMIT $4
"""


async def open_pool(database_url: str, pool_size: int = 20) -> Pool:
    """Create a connection pool on the wallet's database and bring its schema up to date."""
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, "wallet.pam", "pam")
    finally:
        await conn.close()
    return await create_pool(database_url, max_size=pool_size)


async def set_player(
    pool: Pool, player_id: str, currency: str, balance_minor: int, blocked: bool | None = None
) -> Player:
    """Create a player or overwrite its account; `blocked=None` keeps the current flag."""
    row = await pool.fetchrow(_SET_PLAYER, player_id, currency, balance_minor, blocked)
    assert row is not None
    return _player(row)


async def get_player(pool: Pool, player_id: str) -> Player | None:
    """Return a player's account, or None."""
    row = await pool.fetchrow(_PLAYER, player_id)
    return None if row is None else _player(row)


async def balance(pool: Pool, player_id: str, currency: str) -> Answer:
    """Return a player's balance, refusing an unknown player or another currency."""
    row = await pool.fetchrow(_PLAYER, player_id)
    if row is None or row["currency"] != currency:
        if currency not in ISO_CURRENCIES:
            raise UnknownCurrencyError(f"unknown currency {currency!r}")
        if row is None:
            return Answer(Status.PLAYER_NOT_FOUND, currency, 0)
        return Answer(Status.CURRENCY_MISMATCH, row["currency"], row["balance_minor"])
    return Answer(Status.OK, currency, row["balance_minor"])


async def apply_money(pool: Pool, money: Money) -> Answer:
    """Apply a debit, credit or rollback exactly once, or replay the answer it got before."""
    async with pool.acquire() as conn, conn.transaction():
        return await apply_money_in(conn, money)


async def apply_money_in(conn: Connection, money: Money) -> Answer:
    """Apply money inside the caller's transaction (the server's batch shares one commit)."""
    digest = money.digest()
    if (
        money.currency not in ISO_CURRENCIES
        and await conn.fetchval(_HOLDS_CURRENCY, money.player_id, money.currency) is None
    ):
        raise UnknownCurrencyError(f"unknown currency {money.currency!r}")
    # Claim the id first: a concurrent copy blocks on the primary key until this commits,
    # then finds the row and replays it.
    claimed = await conn.fetchval(
        _INSERT, *_row(money, money.transaction_id, money.op), digest, "applied", Status.OK
    )
    if claimed is None:
        return await _replay(conn, money, digest)
    outcome = await (_rollback if money.op == "rollback" else _transfer)(conn, money)
    state = "applied" if outcome.status is Status.OK else "rejected"
    await conn.execute(
        _SETTLE, money.transaction_id, state, outcome.status,
        outcome.balance_minor, outcome.amount_minor,
    )  # fmt: skip
    return Answer(outcome.status, outcome.currency, outcome.balance_minor)


async def list_transactions(
    pool: Pool, *, since: datetime | None, until: datetime | None, after: int, limit: int
) -> tuple[list[Entry], int | None]:
    """Return up to `limit` transactions after the cursor, and the next cursor if more remain."""
    rows = await pool.fetch(_LIST, after, since, until, limit + 1)
    page = rows[:limit]
    entries = [Entry(**{k: v for k, v in row.items() if k != "seq"}) for row in page]
    return entries, (page[-1]["seq"] if len(rows) > limit else None)


def _player(row: asyncpg.Record) -> Player:
    return Player(row["player_id"], row["currency"], row["balance_minor"], row["blocked"])


def _row(money: Money, transaction_id: str, op: str) -> tuple[object, ...]:
    return (
        transaction_id, op, money.player_id, money.currency, money.amount_minor, money.round_id,
        money.game_id, money.provider, money.kind, money.reference_transaction_id,
    )  # fmt: skip


async def _current(conn: Connection, player_id: str, currency: str) -> tuple[str, int]:
    """Return the player's currency and balance now, or the asked currency and 0."""
    row = await conn.fetchrow(_PLAYER, player_id)
    return (currency, 0) if row is None else (row["currency"], row["balance_minor"])


async def _replay(conn: Connection, money: Money, digest: bytes) -> Answer:
    """Answer a request whose transaction id is already stored."""
    stored = await conn.fetchrow(_STORED, money.transaction_id)
    assert stored is not None, "rows are never deleted and the conflicting insert committed"
    currency, balance_minor = await _current(conn, money.player_id, money.currency)
    if stored["state"] == "tombstone":
        # A rollback got here first; a debit with this id must never move money now.
        refused = Status.TRANSACTION_ROLLED_BACK if money.op == "debit" else Status.TRANSACTION_MISMATCH
        return Answer(refused, currency, balance_minor)
    if stored["request_hash"] != digest:
        return Answer(Status.TRANSACTION_MISMATCH, currency, balance_minor)
    status = Status(stored["status"])
    if stored["type"] == "debit" and stored["state"] == "rolled_back":
        status = Status.TRANSACTION_ROLLED_BACK
    return Answer(status, currency, balance_minor, replay=True)


async def _move(
    conn: Connection, player_id: str, currency: str, delta_minor: int, *, bet: bool = False
) -> tuple[Status, str, int]:
    """Add `delta_minor` to a balance if allowed; return the status, currency and balance."""
    row = await conn.fetchrow(_MOVE, player_id, currency, delta_minor, bet)
    if row is not None:
        return Status.OK, currency, row["balance_minor"]
    # Find out why under the row lock, so the reason and the balance given are the real ones.
    player = await conn.fetchrow(_PLAYER + " FOR UPDATE", player_id)
    if player is None:
        return Status.PLAYER_NOT_FOUND, currency, 0
    if player["currency"] != currency:
        return Status.CURRENCY_MISMATCH, player["currency"], player["balance_minor"]
    if bet and player["blocked"]:
        return Status.PLAYER_BLOCKED, currency, player["balance_minor"]
    if player["balance_minor"] + delta_minor < 0:
        return Status.INSUFFICIENT_FUNDS, currency, player["balance_minor"]
    # A credit landed between the two statements; with the row locked, this try decides.
    row = await conn.fetchrow(_MOVE, player_id, currency, delta_minor, bet)
    assert row is not None
    return Status.OK, currency, row["balance_minor"]


async def _transfer(conn: Connection, money: Money) -> _Outcome:
    """Take a debit from the balance or add a credit to it."""
    # A credit is owed money, so only a debit is refused for a blocked player.
    bet = money.op == "debit"
    delta_minor = -money.amount_minor if bet else money.amount_minor
    status, currency, balance_minor = await _move(conn, money.player_id, money.currency, delta_minor, bet=bet)
    return _Outcome(status, currency, balance_minor, money.amount_minor)


async def _rollback(conn: Connection, money: Money) -> _Outcome:
    """Reverse the referenced debit or credit, or leave a tombstone if it is unknown."""
    ref_id = money.reference_transaction_id
    assert ref_id is not None
    # The rollback inserts the id of the debit it cancels, so when the two race the primary key,
    # not timing, decides: either the debit is found and refunded, or the tombstone refuses it.
    tombstone = await conn.fetchval(
        _INSERT, *_row(money, ref_id, "debit"), None, "tombstone", Status.TRANSACTION_ROLLED_BACK
    )
    if tombstone is None:
        ref = await conn.fetchrow(_STORED + " FOR UPDATE", ref_id)
        assert ref is not None
        if (
            ref["type"] == "rollback"
            or ref["player_id"] != money.player_id
            or ref["currency"] != money.currency
        ):
            currency, balance_minor = await _current(conn, money.player_id, money.currency)
            return _Outcome(Status.TRANSACTION_MISMATCH, currency, balance_minor, money.amount_minor)
        if ref["state"] == "applied":
            amount_minor = ref["amount_minor"]
            delta_minor = amount_minor if ref["type"] == "debit" else -amount_minor
            status, currency, balance_minor = await _move(conn, money.player_id, money.currency, delta_minor)
            if status is not Status.OK:
                return _Outcome(status, currency, balance_minor, money.amount_minor)
            await conn.execute(_MARK_ROLLED_BACK, ref_id)
            return _Outcome(status, currency, balance_minor, amount_minor)
    # Unknown, refused or already reversed: nothing left to reverse, and the answer is still OK.
    currency, balance_minor = await _current(conn, money.player_id, money.currency)
    return _Outcome(Status.OK, currency, balance_minor, 0)
