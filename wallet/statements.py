"""The engine's set-based statements: one to prefetch and lock a batch's rows, one to write its decisions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from wallet import ledger
from wallet.db import Connection
from wallet.decide import ROUND_FIELDS, Decision, Item, Snapshot, account_key, op_key, round_key
from wallet.operations import Kind, transfer_payload


class KeyTakenError(Exception):
    """A key the batch prefetched as new was inserted meanwhile by another transaction."""


def _unnest(first: int, types: Sequence[str]) -> str:
    """Return unnest() over array parameters $first, $first+1, ... of the given element types."""
    return "unnest(" + ", ".join(f"${first + n}::{t}[]" for n, t in enumerate(types)) + ")"


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Turn rows into one list per column, the shape unnest takes."""
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


_KEY = "provider, scope, kind, external_id"
_ROUND_KEY = "provider, operator, player_id, round_id"
_ROUND_OPENERS = ("text",) * 6 + ("boolean",) + ("text",) * 3
# One statement reads and locks everything a batch's decisions depend on: which keys exist, its
# rounds (opening the new ones), its accounts and its bettors' own limits. Rows are locked in key
# order, so batches of two nodes rarely deadlock (and a deadlock only runs the batch again).
_PREFETCH = f"""
WITH existing AS (
    SELECT o.provider, o.scope, o.kind, o.external_id FROM croupier.operations o
    JOIN {_unnest(1, ("text",) * 4)} AS k ({_KEY}) USING ({_KEY})
), openers AS (
    -- A round is opened by its first operation that is new: a repeat opens nothing.
    SELECT DISTINCT ON ({_ROUND_KEY}) {_ROUND_KEY}, game_id, currency, ends_when_settled
    FROM {_unnest(5, _ROUND_OPENERS)} WITH ORDINALITY
        AS v ({_ROUND_KEY}, game_id, currency, ends_when_settled, scope, kind, external_id, ord)
    WHERE (provider, scope, kind, external_id) NOT IN (SELECT * FROM existing)
    ORDER BY {_ROUND_KEY}, ord
), opened AS (
    INSERT INTO croupier.rounds ({_ROUND_KEY}, game_id, currency, ends_when_settled)
    SELECT * FROM openers
    ON CONFLICT ({_ROUND_KEY}) DO UPDATE SET state = rounds.state
    RETURNING *
), locked AS (
    SELECT r.* FROM croupier.rounds r
    JOIN {_unnest(15, ("text",) * 4)} AS k ({_ROUND_KEY}) USING ({_ROUND_KEY})
    WHERE (r.provider, r.operator, r.player_id, r.round_id) NOT IN (SELECT {_ROUND_KEY} FROM opened)
    ORDER BY {", ".join("r." + c.strip() for c in _ROUND_KEY.split(","))}
    FOR UPDATE OF r
), accounts AS (
    SELECT a.operator, a.player_id, a.currency, a.balance_minor, a.blocked FROM croupier.accounts a
    JOIN {_unnest(19, ("text",) * 3)} AS k (operator, player_id, currency)
        USING (operator, player_id, currency)
    ORDER BY a.operator, a.player_id, a.currency
    FOR UPDATE OF a
), unsettled AS (
    -- Bets still in flight at the operator in these rounds: a win that would be refused for want
    -- of a bet waits for them instead.
    SELECT DISTINCT o.provider, o.operator, o.player_id, o.round_id, o.state FROM croupier.operations o
    JOIN {_unnest(15, ("text",) * 4)} AS k ({_ROUND_KEY}) USING ({_ROUND_KEY})
    WHERE o.state IN ('pending', 'queued') AND o.kind = 'debit'
), limits AS (
    SELECT l.operator, l.player_id, {", ".join("l." + c for c in ledger.PLAYER_LIMIT_COLUMNS)},
        {ledger.BLOCKED_NOW.replace("block", "l.block")} AS blocked_now
    FROM croupier.player_limits l
    JOIN {_unnest(22, ("text",) * 2)} AS k (operator, player_id) USING (operator, player_id)
)
SELECT
    (SELECT coalesce(json_agg(existing), '[]') FROM existing) AS existing,
    (SELECT coalesce(json_agg(opened), '[]') FROM opened) AS opened,
    (SELECT coalesce(json_agg(locked), '[]') FROM locked) AS locked,
    (SELECT coalesce(json_agg(accounts), '[]') FROM accounts) AS accounts,
    (SELECT coalesce(json_agg(limits), '[]') FROM limits) AS limits,
    (SELECT coalesce(json_agg(unsettled), '[]') FROM unsettled) AS unsettled
"""


async def prefetch(conn: Connection, items: Sequence[Item]) -> Snapshot:
    """Read and lock every row the batch's decisions depend on, in one statement."""
    keys = sorted({op_key(i.op) for i in items})
    # Only the first copy of a key may open a round: a later copy is a repeat (or a mismatch).
    firsts = {op_key(i.op): i for i in reversed(items)}.values()
    openers = [
        (
            *round_key(i.op),
            i.op.game_id,
            i.op.currency,
            i.caps.rounds_end_when_bets_settled,
            *op_key(i.op)[1:],
        )
        for i in firsts
        if i.creates_round()
    ]
    round_keys = sorted({round_key(i.op) for i in items})
    account_keys = sorted({account_key(i.op) for i in items})
    bettors = sorted({(i.op.operator, i.op.player_id) for i in items if i.op.kind is Kind.DEBIT})
    row = await conn.fetchrow(
        _PREFETCH,
        *_columns(keys, 4),
        *_columns(openers, 10),
        *_columns(round_keys, 4),
        *_columns(account_keys, 3),
        *_columns(bettors, 2),
    )
    assert row is not None
    rounds = {
        (r["provider"], r["operator"], r["player_id"], r["round_id"]): r
        for part in ("opened", "locked")
        for r in orjson.loads(row[part])
    }
    return Snapshot(
        existing={
            (e["provider"], e["scope"], e["kind"], e["external_id"]) for e in orjson.loads(row["existing"])
        },
        rounds=rounds,
        accounts={(a["operator"], a["player_id"], a["currency"]): a for a in orjson.loads(row["accounts"])},
        player_limits={(x["operator"], x["player_id"]): x for x in orjson.loads(row["limits"])},
        unsettled={
            ((u["provider"], u["operator"], u["player_id"], u["round_id"]), u["state"])
            for u in orjson.loads(row["unsettled"])
        },
    )


_OP_COLUMNS = (*ledger.OPERATION_COLUMNS, "reason", "balance_minor")
_OP_TYPES = ("uuid",) + ("text",) * 7 + ("bigint",) + ("text",) * 5 + ("bytea",) + ("text",) * 3 + ("bigint",)
_ENTRY_TYPES = ("text",) * 4 + ("bigint",)
_ROUND_TYPES = ("text",) * 4 + ("integer", "integer", "bigint", "integer", "bigint", "text")
_E = 1 + len(_OP_COLUMNS)
_A = _E + len(_ENTRY_TYPES)
_R = _A + 4
_OUTBOX_TYPES = ("text",) * 4 + ("text", "text", "text", "float8")
_O = _R + len(_ROUND_TYPES)
# One statement writes the decided operations (their keys: a key taken meanwhile is simply not
# returned), their entries, and the accounts' and rounds' new values.
_WRITE = f"""
WITH ops AS (
    INSERT INTO croupier.operations ({", ".join(_OP_COLUMNS)})
    SELECT {", ".join(_OP_COLUMNS)}
    FROM {_unnest(1, _OP_TYPES)} WITH ORDINALITY AS v ({", ".join(_OP_COLUMNS)}, ord)
    ORDER BY ord
    ON CONFLICT ({_KEY}) DO NOTHING
    RETURNING id, {_KEY}, operator, player_id, currency, created_at
), entries AS (
    INSERT INTO croupier.entries (operation_id, operator, player_id, currency, amount_minor)
    SELECT ops.id, ops.operator, ops.player_id, ops.currency, e.amount_minor
    FROM {_unnest(_E, _ENTRY_TYPES)} WITH ORDINALITY AS e ({_KEY}, amount_minor, ord)
    JOIN ops USING ({_KEY})
    ORDER BY e.ord
), accounts AS (
    UPDATE croupier.accounts a SET balance_minor = v.balance_minor
    FROM {_unnest(_A, ("text", "text", "text", "bigint"))} AS v (operator, player_id, currency, balance_minor)
    WHERE a.operator = v.operator AND a.player_id = v.player_id AND a.currency = v.currency
), rounds AS (
    UPDATE croupier.rounds r SET bets_count = v.bets_count, live_bets = v.live_bets,
        bets_minor = v.bets_minor, wins_count = v.wins_count, wins_minor = v.wins_minor,
        state = v.state,
        closed_at = CASE WHEN v.state = 'closed' THEN coalesce(r.closed_at, now()) ELSE r.closed_at END
    FROM {_unnest(_R, _ROUND_TYPES)}
        AS v ({_ROUND_KEY}, bets_count, live_bets, bets_minor, wins_count, wins_minor, state)
    WHERE r.provider = v.provider AND r.operator = v.operator AND r.player_id = v.player_id
        AND r.round_id = v.round_id
), outbox AS (
    INSERT INTO croupier.outbox (operation_id, operator, action, payload, due_at)
    SELECT ops.id, ops.operator, v.action, v.payload::jsonb, now() + make_interval(secs => v.due_s)
    FROM {_unnest(_O, _OUTBOX_TYPES)} AS v ({_KEY}, operator, action, payload, due_s)
    JOIN ops USING ({_KEY})
)
SELECT id, {_KEY}, created_at FROM ops
"""


async def write(
    conn: Connection, decisions: Sequence[Decision], snap: Snapshot
) -> list[asyncpg.Record | None]:
    """Write the decided operations, their entries, outbox rows, balances and rounds; return the rows."""
    kept = [d for d in decisions if d.stored]
    rows = [
        (
            *ledger.operation_values(d.item.op, d.state),
            d.reason.value if d.reason is not None else None,
            d.stored_balance_minor,
        )
        for d in kept
    ]
    entries = [(*op_key(d.item.op), d.entry_minor) for d in kept if d.entry_minor is not None]
    outbox = [
        (
            *op_key(d.item.op),
            d.item.op.operator,
            d.outbox_action,
            orjson.dumps(transfer_payload(d.transfer)).decode(),
            d.item.policy.recovery_after_s,
        )
        for d in kept
        if d.transfer is not None
    ]
    balances = [(*key, snap.accounts[key]["balance_minor"]) for key in sorted(snap.touched_accounts)]
    counters = [(*key, *(snap.rounds[key][f] for f in ROUND_FIELDS)) for key in sorted(snap.touched_rounds)]
    inserted = await conn.fetch(
        _WRITE,
        *_columns(rows, len(_OP_COLUMNS)),
        *_columns(entries, len(_ENTRY_TYPES)),
        *_columns(balances, 4),
        *_columns(counters, len(_ROUND_TYPES)),
        *_columns(outbox, len(_OUTBOX_TYPES)),
    )
    if len(inserted) != len(rows):
        # Another transaction took one of these keys after the prefetch: the batch's decisions
        # (and what this statement wrote) are void, and the batch is decided again.
        raise KeyTakenError(f"{len(rows) - len(inserted)} of {len(rows)} keys were taken meanwhile")
    by_key = {(r["provider"], r["scope"], r["kind"], r["external_id"]): r for r in inserted}
    return [by_key[op_key(d.item.op)] if d.stored else None for d in decisions]
