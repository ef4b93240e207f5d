"""Responsible gaming: a player's limits and block, read where a bet or a launch is decided.

A player's own value wins over the operator's default, except the operator's `max_bet_minor`,
which is a ceiling for every player (the bet limit in force is the lower of the two). Amount
limits are in one currency: a bet in another currency is held to the operator's defaults for that
currency. A loss limit counts the net loss (bets minus wins and refunds) since the start of the
current calendar period in UTC: the day, the ISO week (from Monday) or the month. A block whose
`until` has passed is no longer in force.

Limits and blocks apply to real-money play only: a play-money ledger (an operator's demo, whose
policy has `play_money`) is never refused for them, and the rows are keyed by the real operator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from wallet import ledger
from wallet.db import Connection
from wallet.errors import Reason, RejectedError
from wallet.operations import Operation
from wallet.policy import OperatorPolicy

LOSS_PERIODS = ("day", "week", "month")
BLOCK_STATES = ("blocked", "self_excluded")
# The class of the advisory locks that serialise one player's loss-limited bets ("RG").
_LOSS_LOCK_CLASS = 0x5247

_SELECT = (
    f"SELECT {', '.join(ledger.PLAYER_LIMIT_COLUMNS)}, {ledger.BLOCKED_NOW} AS blocked_now"
    " FROM croupier.player_limits WHERE operator = $1 AND player_id = $2"
)


@dataclass(frozen=True, slots=True)
class Block:
    """A block or self-exclusion in force."""

    state: str  # 'blocked' or 'self_excluded'
    reason: str | None
    since: datetime
    until: datetime | None


@dataclass(frozen=True, slots=True)
class PlayerLimits:
    """The limits in force for one player: the player's own, else the operator's defaults."""

    operator: str
    player_id: str
    currency: str | None = None
    max_bet_minor: int | None = None
    loss_limit_minor: int | None = None
    loss_period: str | None = None
    session_limit_s: int | None = None
    reality_check_s: int | None = None
    block: Block | None = None


async def own(
    conn: Connection, operator: str, player_id: str, *, lock: bool = False
) -> asyncpg.Record | None:
    """Return the player's own row (one primary-key read), locked for update if asked."""
    return await conn.fetchrow(_SELECT + (" FOR UPDATE" if lock else ""), operator, player_id)


def _lower(first: int | None, second: int | None) -> int | None:
    present = [v for v in (first, second) if v is not None]
    return min(present) if present else None


def _default_currency(policy: OperatorPolicy) -> str | None:
    # With no currency asked for and none of the player's own, the operator's defaults speak for
    # themselves only when they are in a single currency.
    named = set(policy.max_bet_minor) | set(policy.loss_limit_minor)
    return next(iter(named)) if len(named) == 1 else None


def in_force(
    policy: OperatorPolicy,
    operator: str,
    player_id: str,
    row: asyncpg.Record | Mapping[str, Any] | None,
    currency: str | None = None,
) -> PlayerLimits:
    """Merge a player's own row with the operator's defaults, for bets in `currency`."""
    mine = row["currency"] if row is not None else None
    currency = currency or mine or _default_currency(policy)
    own_amounts = row is not None and currency is not None and currency == mine

    def own_value(name: str) -> int | None:
        return row[name] if row is not None else None

    max_bet = policy.max_bet_minor.get(currency) if currency is not None else None
    loss_limit = policy.loss_limit_minor.get(currency) if currency is not None else None
    if own_amounts:
        max_bet = _lower(own_value("max_bet_minor"), max_bet)
        own_loss = own_value("loss_limit_minor")
        loss_limit = own_loss if own_loss is not None else loss_limit
    block = None
    if row is not None and row["blocked_now"]:
        block = Block(row["block_state"], row["block_reason"], row["blocked_since"], row["blocked_until"])
    return PlayerLimits(
        operator=operator,
        player_id=player_id,
        currency=currency,
        max_bet_minor=max_bet,
        loss_limit_minor=loss_limit,
        loss_period=row["loss_period"] if row is not None and row["loss_period"] else policy.loss_period,
        session_limit_s=_first(own_value("session_limit_s"), policy.session_limit_s),
        reality_check_s=_first(own_value("reality_check_s"), policy.reality_check_s),
        block=block,
    )


def _first(mine: int | None, default: int | None) -> int | None:
    return mine if mine is not None else default


async def for_player(
    conn: Connection, policy: OperatorPolicy, player_id: str, *, currency: str | None = None
) -> PlayerLimits:
    """Return the limits in force for a player of the policy's operator (for bets in `currency`)."""
    row = await own(conn, policy.name, player_id)
    return in_force(policy, policy.name, player_id, row, currency)


def for_bet(policy: OperatorPolicy, op: Operation, round_: asyncpg.Record) -> PlayerLimits:
    """Return the limits in force for a new bet, from the row `ledger.lock_bet_round` returned."""
    if policy.play_money:
        return PlayerLimits(op.operator, op.player_id)
    prefix = ledger.LIMITS_PREFIX
    row = None
    if round_[f"{prefix}found"]:
        row = {name: round_[prefix + name] for name in (*ledger.PLAYER_LIMIT_COLUMNS, "blocked_now")}
    return in_force(policy, op.operator, op.player_id, row, op.currency)


async def loss_in_period(
    conn: Connection,
    operator: str,
    player_id: str,
    currency: str,
    period: str,
    *,
    excluding: int | None = None,
) -> int:
    """Return the player's net loss in `currency` since the start of the current UTC period."""
    if period not in LOSS_PERIODS:
        raise ValueError(f"loss period must be one of {LOSS_PERIODS}")
    # A bet counts from its intent (pending or queued too), until it is refused or reversed; a win
    # counts once it is durably taken. The (operator, player_id, created_at) index finds the rows.
    value = await conn.fetchval(
        "SELECT coalesce(sum(CASE kind WHEN 'debit' THEN amount_minor ELSE -amount_minor END), 0)"
        " FROM croupier.operations"
        " WHERE operator = $1 AND player_id = $2"
        " AND created_at >= date_trunc($4::text, now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
        " AND currency = $3 AND id <> $5 AND NOT reversed"
        " AND ((kind = 'debit' AND state IN ('applied', 'queued', 'pending'))"
        " OR (kind = 'credit' AND state IN ('applied', 'queued')))",
        operator,
        player_id,
        currency,
        period,
        excluding if excluding is not None else 0,
    )
    return int(value)


async def check_loss(conn: Connection, op: Operation, op_id: int, limits: PlayerLimits) -> None:
    """Refuse a bet that would take the net loss of the period above the loss limit in force."""
    if limits.loss_limit_minor is None or limits.loss_period is None:
        return
    # Two bets of one player at once must not both fit under the limit: each waits for the other's
    # transaction (which holds its bet's intent) to commit before summing.
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1::int, hashtext($2))",
        _LOSS_LOCK_CLASS,
        f"{op.operator}/{op.player_id}",
    )
    loss = await loss_in_period(
        conn, op.operator, op.player_id, op.currency, limits.loss_period, excluding=op_id
    )
    if loss + (op.amount_minor or 0) > limits.loss_limit_minor:
        raise RejectedError(
            Reason.LIMIT_EXCEEDED,
            f"bet would take the {limits.loss_period}'s net loss above {limits.loss_limit_minor}",
        )


async def lock_own(conn: Connection, operator: str, player_id: str) -> asyncpg.Record:
    """Return the player's own row locked for update, creating an empty one first if there is none."""
    await conn.execute(
        "INSERT INTO croupier.player_limits (operator, player_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        operator,
        player_id,
    )
    row = await own(conn, operator, player_id, lock=True)
    assert row is not None
    return row


async def save(
    conn: Connection,
    operator: str,
    player_id: str,
    *,
    currency: str | None,
    max_bet_minor: int | None,
    loss_limit_minor: int | None,
    loss_period: str | None,
    session_limit_s: int | None,
    reality_check_s: int | None,
) -> None:
    """Store a player's own limits (a null falls back to the operator's default)."""
    await conn.execute(
        "UPDATE croupier.player_limits SET currency = $3, max_bet_minor = $4, loss_limit_minor = $5,"
        " loss_period = $6, session_limit_s = $7, reality_check_s = $8, updated_at = now()"
        " WHERE operator = $1 AND player_id = $2",
        operator,
        player_id,
        currency,
        max_bet_minor,
        loss_limit_minor,
        loss_period,
        session_limit_s,
        reality_check_s,
    )


async def set_block(
    conn: Connection, operator: str, player_id: str, state: str, reason: str | None, until: datetime | None
) -> None:
    """Block or self-exclude a player now; a block already in force keeps the moment it began."""
    await conn.execute(
        "UPDATE croupier.player_limits SET block_state = $3, block_reason = $4, blocked_until = $5,"
        " blocked_since = CASE WHEN block_state IS NOT NULL"
        " AND (blocked_until IS NULL OR blocked_until > now()) THEN blocked_since ELSE now() END,"
        " updated_at = now()"
        " WHERE operator = $1 AND player_id = $2",
        operator,
        player_id,
        state,
        reason,
        until,
    )


async def lift_block(conn: Connection, operator: str, player_id: str) -> None:
    """Lift a player's block."""
    await conn.execute(
        "UPDATE croupier.player_limits SET block_state = NULL, block_reason = NULL, blocked_since = NULL,"
        " blocked_until = NULL, updated_at = now() WHERE operator = $1 AND player_id = $2",
        operator,
        player_id,
    )
