"""Phase E's endpoint: a ledger bet or win written lean, one durable statement per request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import asyncpg
import orjson
from aiohttp import web

# Only what a ledger bet needs: the operation under its unique key (the idempotency key), the
# balance, an entry. No foreign key, trigger or secondary index, unlike croupier's own tables.
SCHEMA = """
DROP TABLE IF EXISTS lean_entries, lean_operations, lean_accounts;
CREATE TABLE lean_accounts (
    player_id       text PRIMARY KEY,
    balance_minor   bigint NOT NULL CHECK (balance_minor >= 0)
);
CREATE TABLE lean_operations (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id  text NOT NULL UNIQUE,
    kind            text NOT NULL,
    player_id       text NOT NULL,
    amount_minor    bigint NOT NULL,
    round_id        text
);
CREATE TABLE lean_entries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operation_id    bigint NOT NULL,
    player_id       text NOT NULL,
    amount_minor    bigint NOT NULL
);
"""

# One statement in autocommit is one transaction and one durable commit, like baseline A. The
# balance moves only if the operation's row is new; a repeat (conflict) changes nothing.
_OUTCOME = """
WITH op AS (
    INSERT INTO lean_operations (transaction_id, kind, player_id, amount_minor, round_id)
    VALUES ($1, '{kind}', $2, $3, $4)
    ON CONFLICT (transaction_id) DO NOTHING
    RETURNING id
), account AS (
    UPDATE lean_accounts SET balance_minor = balance_minor {sign} $3
    WHERE player_id = $2 {check} AND EXISTS (SELECT FROM op)
    RETURNING balance_minor
), entry AS (
    INSERT INTO lean_entries (operation_id, player_id, amount_minor)
    SELECT op.id, $2, {sign}$3 FROM op, account
)
SELECT (SELECT id FROM op) AS op_id, (SELECT balance_minor FROM account) AS balance_minor
"""
BET_SQL = _OUTCOME.format(kind="debit", sign="-", check="AND balance_minor >= $3")
WIN_SQL = _OUTCOME.format(kind="credit", sign="+", check="")

# Only on a repeat: answer as the first time did (an operation without an entry was refused).
REPLAY_SQL = """
SELECT e.id IS NOT NULL AS applied, a.balance_minor
FROM lean_operations o
LEFT JOIN lean_entries e ON e.operation_id = o.id
LEFT JOIN lean_accounts a ON a.player_id = o.player_id
WHERE o.transaction_id = $1
"""


@dataclass(frozen=True)
class LeanConfig:
    """What the child process needs: the database and its pool size."""

    database_url: str
    pool_size: int


async def _reset(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Roll back a transaction left open, as the gateway's pool does, and nothing more."""
    # asyncpg's default reset is one more round trip on every release.
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def _minor(value: object) -> int | None:
    """Return a positive amount with at most two decimals in minor units, else None."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    try:
        scaled = Decimal(value).scaleb(2)
    except InvalidOperation:
        return None
    return int(scaled) if scaled > 0 and scaled == scaled.to_integral_value() else None


def _major(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def _answer(payload: dict[str, object], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def lean_app(config: LeanConfig) -> web.Application:
    """Return an app answering generic-shaped debit and credit calls with one statement each."""
    app = web.Application()
    pool_key = web.AppKey("pool", asyncpg.Pool)

    async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
        size = config.pool_size
        async with asyncpg.create_pool(
            config.database_url, min_size=size, max_size=size, reset=_reset
        ) as pool:
            app[pool_key] = pool
            yield

    def handler(sql: str) -> web.Handler:
        async def handle(request: web.Request) -> web.Response:
            try:
                body = orjson.loads(await request.read())
                txn, player, round_id = body["transaction_id"], body["player_id"], body.get("round_id")
            except (orjson.JSONDecodeError, KeyError, TypeError):
                return _answer({"status": "ERROR", "code": "BAD_REQUEST"}, 400)
            amount_minor = _minor(body.get("amount"))
            if amount_minor is None or not isinstance(txn, str) or not isinstance(player, str):
                return _answer({"status": "ERROR", "code": "BAD_REQUEST"}, 400)
            pool = request.app[pool_key]
            row = await pool.fetchrow(sql, txn, player, amount_minor, round_id)
            assert row is not None
            applied, balance = row["op_id"] is not None, row["balance_minor"]
            if not applied:
                replay = await pool.fetchrow(REPLAY_SQL, txn)
                assert replay is not None
                applied, balance = replay["applied"], replay["balance_minor"]
            elif balance is None:
                applied = False  # the row is new but the balance did not move: refused for good
            if not applied:
                return _answer({"status": "ERROR", "code": "INSUFFICIENT_FUNDS"}, 402)
            return _answer(
                {
                    "status": "OK",
                    "balance": _major(balance),
                    "currency": body.get("currency"),
                    "transaction_id": txn,
                    "replay": row["op_id"] is None,
                }
            )

        return handle

    app.cleanup_ctx.append(pool_ctx)
    app.router.add_post("/debit", handler(BET_SQL))
    app.router.add_post("/credit", handler(WIN_SQL))
    return app


async def prepare(url: str, players: list[str], opening_minor: int) -> None:
    """Create phase E's tables afresh and open one account per player."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SCHEMA)
        await conn.executemany(
            "INSERT INTO lean_accounts (player_id, balance_minor) VALUES ($1, $2)",
            [(p, opening_minor) for p in players],
        )
    finally:
        await conn.close()


async def check(url: str, players: list[str], opening_minor: int) -> tuple[str, bool]:
    """Return a note on phase E's tables and whether every balance equals opening plus entries."""
    conn = await asyncpg.connect(url)
    try:
        ops = await conn.fetchval("SELECT count(*) FROM lean_operations")
        entries = await conn.fetchval("SELECT count(*) FROM lean_entries")
        rows = await conn.fetch(
            "SELECT a.player_id, a.balance_minor, coalesce(sum(e.amount_minor), 0) AS moved"
            " FROM lean_accounts a LEFT JOIN lean_entries e USING (player_id) GROUP BY a.player_id"
        )
    finally:
        await conn.close()
    wanted = set(players)
    agree = sum(r["player_id"] in wanted and r["balance_minor"] == opening_minor + r["moved"] for r in rows)
    note = (
        f"operations: {ops}, entries: {entries} (one per applied operation);"
        f" balances equal to opening + entries: {agree}/{len(players)}"
    )
    return note, ops == entries and agree == len(players)
