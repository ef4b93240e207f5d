"""The gateway's ledger in PostgreSQL: operations (idempotency keys), entries, rounds and outbox."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from wallet.db import Connection
from wallet.errors import Reason
from wallet.operations import Kind, Operation, State

SCHEMA = "croupier"

OPERATION_COLUMNS = (
    "transaction_id",
    "provider",
    "scope",
    "kind",
    "external_id",
    "operator",
    "player_id",
    "currency",
    "amount_minor",
    "round_id",
    "game_id",
    "credit_kind",
    "reference_id",
    "reference_kind",
    "request_hash",
    "state",
    "campaign_id",
)
_COLUMNS = ", ".join(OPERATION_COLUMNS)


def operation_values(op: Operation, state: State) -> tuple[Any, ...]:
    """Return an operation's row in the order of OPERATION_COLUMNS."""
    return (
        op.transaction_id,
        op.provider,
        op.scope,
        op.kind.value,
        op.external_id,
        op.operator,
        op.player_id,
        op.currency,
        op.amount_minor,
        op.round_id,
        op.game_id,
        op.credit_kind.value if op.kind is Kind.CREDIT else None,
        op.reference_id,
        op.reference_kind.value if op.kind is Kind.ROLLBACK else None,
        op.request_hash(),
        state.value,
        op.campaign_id,
    )


async def claim(conn: Connection, op: Operation, state: State) -> int | None:
    """Insert the operation's key row; return its id, or None if the key exists (a repeat)."""
    # ON CONFLICT waits for a concurrent insert of the same key to commit or abort, so the
    # UNIQUE constraint, not timing, decides which copy applies.
    return await conn.fetchval(  # type: ignore[no-any-return]
        f"INSERT INTO croupier.operations ({_COLUMNS})"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
        " ON CONFLICT (provider, scope, kind, external_id) DO NOTHING RETURNING id",
        *operation_values(op, state),
    )


async def find(
    conn: Connection,
    provider: str,
    scope: str,
    kind: Kind,
    external_id: str,
    *,
    lock: bool = False,
) -> asyncpg.Record | None:
    """Return the stored operation under a key, locked for update if asked."""
    return await conn.fetchrow(
        "SELECT * FROM croupier.operations"
        " WHERE provider = $1 AND scope = $2 AND kind = $3 AND external_id = $4"
        + (" FOR UPDATE" if lock else ""),
        provider,
        scope,
        kind.value,
        external_id,
    )


async def lock_operation(conn: Connection, op_id: int) -> asyncpg.Record:
    """Return an operation row locked for update."""
    row = await conn.fetchrow("SELECT * FROM croupier.operations WHERE id = $1 FOR UPDATE", op_id)
    assert row is not None
    return row


async def finish(
    conn: Connection,
    op_id: int,
    state: State,
    reason: Reason | None = None,
    balance_minor: int | None = None,
) -> asyncpg.Record:
    """Record an operation's outcome and the balance that was answered; return the row."""
    row = await conn.fetchrow(
        "UPDATE croupier.operations SET state = $2, reason = $3, balance_minor = $4,"
        " updated_at = now() WHERE id = $1 RETURNING *",
        op_id,
        state.value,
        reason.value if reason else None,
        balance_minor,
    )
    assert row is not None
    return row


# The every-bet-settled rule: each applied bet has a win or a refund of its own.
_ALL_BETS_SETTLED = (
    "rounds.ends_when_settled AND rounds.state = 'open' AND rounds.bets_count > 0"
    " AND rounds.wins_count + rounds.refunds_count >= rounds.bets_count"
)


async def settle_applied(
    conn: Connection,
    op_id: int,
    balance_minor: int | None,
    signed_minor: int,
    round_change: str | None = None,
    round_minor: int = 0,
) -> asyncpg.Record:
    """Mark an operation applied, append its entry and count it in its round, in one statement."""
    count = ""
    if round_change is not None:
        count = (
            f", r AS (UPDATE croupier.rounds SET {_ROUND_CHANGES[round_change].format(amount='$4')}"
            " FROM o WHERE rounds.provider = o.provider AND rounds.operator = o.operator"
            " AND rounds.player_id = o.player_id AND rounds.round_id = o.round_id)"
        )
    else:
        # A credit or refund was counted in its round when taken; now that it is applied, a round
        # under the every-bet-settled rule ends if this was its last unsettled bet.
        count = (
            ", r AS (UPDATE croupier.rounds SET state = 'closed', closed_at = now() FROM o"
            " WHERE rounds.provider = o.provider AND rounds.operator = o.operator"
            " AND rounds.player_id = o.player_id AND rounds.round_id = o.round_id"
            f" AND o.kind IN ('credit', 'rollback') AND {_ALL_BETS_SETTLED})"
        )
    row = await conn.fetchrow(
        "WITH o AS (UPDATE croupier.operations SET state = 'applied', reason = NULL,"
        " balance_minor = $2, updated_at = now() WHERE id = $1 RETURNING *),"
        " e AS (INSERT INTO croupier.entries (operation_id, operator, player_id, currency, amount_minor)"
        f" SELECT id, operator, player_id, currency, $3 FROM o){count}"
        " SELECT transaction_id, currency, created_at FROM o",
        op_id,
        balance_minor,
        signed_minor,
        *((round_minor,) if round_change is not None and "{amount}" in _ROUND_CHANGES[round_change] else ()),
    )
    assert row is not None
    return row


async def mark_reversed(conn: Connection, op_id: int, reversed_: bool = True) -> None:
    """Mark an applied debit or credit as reversed by a rollback (or undo that mark)."""
    await conn.execute(
        "UPDATE croupier.operations SET reversed = $2, updated_at = now() WHERE id = $1",
        op_id,
        reversed_,
    )


async def lock_round(
    conn: Connection,
    op: Operation,
    round_id: str | None,
    *,
    create: bool,
    ends_when_settled: bool = False,
) -> asyncpg.Record | None:
    """Return a round of the operation's player locked for update, creating it first if asked."""
    if round_id is None:
        return None
    if create:
        # DO UPDATE (to the same value) both locks an existing row and returns it: one statement.
        return await conn.fetchrow(
            "INSERT INTO croupier.rounds"
            " (provider, operator, player_id, round_id, game_id, currency, ends_when_settled)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (provider, operator, player_id, round_id) DO UPDATE SET state = rounds.state"
            " RETURNING *",
            op.provider,
            op.operator,
            op.player_id,
            round_id,
            op.game_id,
            op.currency,
            ends_when_settled,
        )
    return await conn.fetchrow(
        "SELECT * FROM croupier.rounds"
        " WHERE provider = $1 AND operator = $2 AND player_id = $3 AND round_id = $4 FOR UPDATE",
        op.provider,
        op.operator,
        op.player_id,
        round_id,
    )


# A player's own responsible-gaming row, as the bet's round statement returns it beside the round
# (prefixed, so no name meets a round's): one statement serves the round lock and the limits.
PLAYER_LIMIT_COLUMNS = (
    "currency",
    "max_bet_minor",
    "loss_limit_minor",
    "loss_period",
    "session_limit_s",
    "reality_check_s",
    "block_state",
    "block_reason",
    "blocked_since",
    "blocked_until",
)
LIMITS_PREFIX = "pl_"
BLOCKED_NOW = "(block_state IS NOT NULL AND (blocked_until IS NULL OR blocked_until > now()))"


_LOCK_BET_ROUND = (
    "WITH r AS (INSERT INTO croupier.rounds"
    " (provider, operator, player_id, round_id, game_id, currency, ends_when_settled)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7)"
    " ON CONFLICT (provider, operator, player_id, round_id) DO UPDATE SET state = rounds.state"
    " RETURNING *) SELECT r.*, "
    + ", ".join(f"l.{c} AS {LIMITS_PREFIX}{c}" for c in PLAYER_LIMIT_COLUMNS)
    + f", l.operator IS NOT NULL AS {LIMITS_PREFIX}found,"
    + f" {BLOCKED_NOW.replace('block', 'l.block')} AS {LIMITS_PREFIX}blocked_now"
    " FROM r LEFT JOIN croupier.player_limits l ON l.operator = r.operator AND l.player_id = r.player_id"
)


async def lock_bet_round(
    conn: Connection, op: Operation, *, ends_when_settled: bool = False
) -> asyncpg.Record:
    """Create or lock a bet's round and return it with the player's own limits row (pl_* columns)."""
    row = await conn.fetchrow(
        _LOCK_BET_ROUND,
        op.provider,
        op.operator,
        op.player_id,
        op.round_id,
        op.game_id,
        op.currency,
        ends_when_settled,
    )
    assert row is not None
    return row


_ROUND_CHANGES = {
    "bet": "bets_count = bets_count + 1, live_bets = live_bets + 1, bets_minor = bets_minor + {amount}",
    "win": "wins_count = wins_count + 1, wins_minor = wins_minor + {amount}",
    "unwin": "wins_count = wins_count - 1, wins_minor = wins_minor - {amount}",
    "unrefund": "live_bets = live_bets + 1, refunds_count = refunds_count - 1,"
    " refunds_minor = refunds_minor - {amount}",
    "refund": "live_bets = live_bets - 1, refunds_count = refunds_count + 1,"
    " refunds_minor = refunds_minor + {amount}",
    "close": "state = 'closed', closed_at = coalesce(closed_at, now())",
}


async def change_round(
    conn: Connection,
    provider: str,
    operator: str,
    player_id: str,
    round_id: str | None,
    change: str,
    amount_minor: int = 0,
) -> None:
    """Apply one counted change to a round."""
    if round_id is None:
        return
    args: tuple[object, ...] = (provider, operator, player_id, round_id)
    if "{amount}" in _ROUND_CHANGES[change]:
        args += (amount_minor,)
    await conn.execute(
        f"UPDATE croupier.rounds SET {_ROUND_CHANGES[change].format(amount='$5')}"
        " WHERE provider = $1 AND operator = $2 AND player_id = $3 AND round_id = $4",
        *args,
    )


async def unsettled_in_round(
    conn: Connection, op: Operation, round_id: str | None, kind: Kind, *, queued: bool
) -> bool:
    """Return whether an operation of this kind in the round still waits for the operator's answer."""
    if round_id is None:
        return False
    states = ["pending", "queued"] if queued else ["pending"]
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT FROM croupier.operations WHERE operator = $1 AND player_id = $2"
            " AND round_id = $3 AND state = ANY($4::text[]) AND provider = $5 AND kind = $6)",
            op.operator,
            op.player_id,
            round_id,
            states,
            op.provider,
            kind.value,
        )
    )


async def schedule(
    conn: Connection,
    op_id: int,
    operator: str,
    action: str,
    payload: dict[str, Any],
    due_in_s: float,
) -> None:
    """Write an outbox row that delivers the call later unless the request answers in time."""
    await conn.execute(
        "INSERT INTO croupier.outbox (operation_id, operator, action, payload, due_at)"
        " VALUES ($1, $2, $3, $4::jsonb, now() + make_interval(secs => $5))",
        op_id,
        operator,
        action,
        orjson.dumps(payload).decode(),
        due_in_s,
    )


async def cancel_untouched(conn: Connection, op_id: int) -> bool:
    """Cancel an operation's outbox row if no worker has tried it yet; return whether it was."""
    cancelled = await conn.fetchval(
        "UPDATE croupier.outbox SET state = 'cancelled'"
        " WHERE operation_id = $1 AND state = 'scheduled' AND attempts = 0 RETURNING true",
        op_id,
    )
    return bool(cancelled)


async def cancel(conn: Connection, op_id: int) -> None:
    """Cancel an operation's outbox row: the request answered in time."""
    await conn.execute(
        "UPDATE croupier.outbox SET state = 'cancelled' WHERE operation_id = $1 AND state = 'scheduled'",
        op_id,
    )


async def claim_due(conn: Connection, limit: int, lease_s: float) -> list[asyncpg.Record]:
    """Take up to `limit` due outbox rows; pushing due_at forward leases them to this worker."""
    return await conn.fetch(
        "UPDATE croupier.outbox SET attempts = attempts + 1,"
        " due_at = now() + make_interval(secs => $2)"
        " WHERE id IN (SELECT id FROM croupier.outbox WHERE state = 'scheduled' AND due_at <= now()"
        "  ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
        " RETURNING id, operation_id, operator, action, payload, attempts",
        limit,
        lease_s,
    )


async def outbox_done(conn: Connection, outbox_id: int, state: str, error: str | None) -> None:
    """Close an outbox row as delivered or dead."""
    await conn.execute(
        "UPDATE croupier.outbox SET state = $2, last_error = $3,"
        " delivered_at = CASE WHEN $2 = 'delivered' THEN now() END WHERE id = $1",
        outbox_id,
        state,
        error,
    )


async def retry_later(conn: Connection, outbox_id: int, delay_s: float, error: str) -> None:
    """Put an outbox row back for another try after a backoff."""
    await conn.execute(
        "UPDATE croupier.outbox SET due_at = now() + make_interval(secs => $2), last_error = $3"
        " WHERE id = $1 AND state = 'scheduled'",
        outbox_id,
        delay_s,
        error,
    )


async def outbox_dead(conn: Connection) -> int:
    """Return how many outbox calls the operator refused for good and a person must reconcile."""
    return int(await conn.fetchval("SELECT count(*) FROM croupier.outbox WHERE state = 'dead'"))


async def outbox_backlog(conn: Connection) -> tuple[int, float]:
    """Return how many calls wait in the outbox for real, and the oldest one's age in seconds."""
    # Rows scheduled only as a safety net for requests still in flight are not backlog.
    row = await conn.fetchrow(
        "SELECT count(*) AS depth, extract(epoch FROM now() - min(created_at)) AS age"
        " FROM croupier.outbox WHERE state = 'scheduled' AND (attempts > 0 OR due_at <= now())"
    )
    assert row is not None
    return int(row["depth"]), float(row["age"] or 0.0)


async def last_known_balance(conn: Connection, operator: str, player_id: str) -> int | None:
    """Return the balance most recently answered for a player."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT balance_minor FROM croupier.operations WHERE operator = $1 AND player_id = $2"
        " AND balance_minor IS NOT NULL ORDER BY created_at DESC LIMIT 1",
        operator,
        player_id,
    )


async def hurry(conn: Connection, op_id: int) -> None:
    """Make an operation's outbox row due now."""
    await conn.execute(
        "UPDATE croupier.outbox SET due_at = now() WHERE operation_id = $1 AND state = 'scheduled'",
        op_id,
    )


async def round_currency(
    conn: Connection | asyncpg.Pool, provider: str, operator: str, player_id: str, round_id: str | None
) -> str | None:
    """Return the currency of a player's round with a provider, else of their latest round there."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT coalesce("
        " (SELECT currency FROM croupier.rounds WHERE provider = $1 AND operator = $2"
        "  AND player_id = $3 AND round_id = $4),"
        " (SELECT currency FROM croupier.rounds WHERE provider = $1 AND operator = $2"
        "  AND player_id = $3 ORDER BY opened_at DESC LIMIT 1))",
        provider,
        operator,
        player_id,
        round_id,
    )
