"""Running a reconciliation: the gateway's transfers and the operator's listing in, safe healing out."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from wallet.backends.seamless import SeamlessWallet
from wallet.db import Connection
from wallet.errors import Reason
from wallet.forwarding import cancel_of
from wallet.metrics import Metrics
from wallet.operations import State, Transfer, transfer_from_payload
from wallet.reconcile import (
    Account,
    Action,
    Booked,
    Delivery,
    Difference,
    Ours,
    Theirs,
    Told,
    check_ledger,
    reconcile,
)

# A finding already acted on before the run is recorded, with its outcome (a stuck round settled).
Settled = tuple[Difference, str]
# One page of the operator's listing: its transactions and the cursor of the next page, if any.
Page = tuple[list[Theirs], int | None]
Lister = Callable[[datetime, datetime, int], Awaitable[Page]]

_OURS = """
SELECT o.id, o.state, o.reason, o.reversed, o.updated_at,
    b.id AS outbox_id, b.action, b.state AS delivery, b.payload
FROM croupier.operations o JOIN croupier.outbox b ON b.operation_id = o.id
WHERE o.operator = $1 AND o.created_at >= $2 AND o.created_at < $3
ORDER BY o.id
"""

_TOLD = {
    State.APPLIED.value: Told.ACCEPTED,
    State.QUEUED.value: Told.ACCEPTED,
    State.REJECTED.value: Told.FAILED,
    State.PENDING.value: Told.PENDING,
}
_OUTBOX_DELIVERY = {"scheduled": Delivery.OWED, "delivered": Delivery.CONFIRMED, "dead": Delivery.DEAD}


@dataclass(frozen=True, slots=True)
class Summary:
    """What one run found and did."""

    reconciliation_id: int
    ours: int
    theirs: int
    differences: Sequence[Difference]
    outcomes: Sequence[str]
    books: str = "operator_wallet"  # or "ledger": the gateway's own books of a ledger-backend operator

    @property
    def unhealed(self) -> int:
        """Return how many differences were left for a person."""
        return sum(outcome == "reported" for outcome in self.outcomes)


def _delivery(row: asyncpg.Record) -> Delivery:
    """Return where the operation itself stands with the operator."""
    if row["state"] == State.PENDING.value:
        return Delivery.UNKNOWN
    if row["state"] == State.REJECTED.value:
        unknown = row["reason"] == Reason.OPERATOR_UNKNOWN.value
        return Delivery.UNKNOWN if unknown else Delivery.REFUSED
    if row["action"] == "cancel_debit" or row["delivery"] == "cancelled":
        return Delivery.CONFIRMED  # answered by the operator in time, or a debit no cancel undid
    return _OUTBOX_DELIVERY[row["delivery"]]


def _ours(sent: Transfer, told: Told, delivery: Delivery, row: asyncpg.Record, *, reversed_: bool) -> Ours:
    """Return a transfer as the operator should hold it, with what its outbox row says."""
    return Ours(
        uuid.UUID(sent.transaction_id),
        sent.type.value,
        sent.player_id,
        sent.currency,
        sent.amount_minor,
        told,
        delivery,
        row["updated_at"],
        row["outbox_id"],
        reversed_,
    )


def ours_from_rows(rows: Sequence[asyncpg.Record]) -> list[Ours]:
    """Turn operations with their outbox rows into what the operator should hold, cancellations included."""
    found = []
    for row in rows:
        if row["state"] not in _TOLD:
            continue  # a tombstone sends nothing
        sent = transfer_from_payload(orjson.loads(row["payload"]))
        found.append(_ours(sent, _TOLD[row["state"]], _delivery(row), row, reversed_=bool(row["reversed"])))
        if row["action"] == "cancel_debit" and row["delivery"] in _OUTBOX_DELIVERY:
            # The gateway's own rollback of a debit with an unknown outcome: owed to the player.
            delivery = _OUTBOX_DELIVERY[row["delivery"]]
            found.append(_ours(cancel_of(sent), Told.ACCEPTED, delivery, row, reversed_=False))
    return found


async def read_theirs(lister: Lister, since: datetime, until: datetime) -> list[Theirs]:
    """Read the operator's whole listing for the window, page by page along its cursor."""
    found: list[Theirs] = []
    cursor: int | None = 0
    while cursor is not None:
        page, cursor = await lister(since, until, cursor)
        found.extend(page)
    return found


def _json(entry: Ours | Theirs | Booked | Account | None) -> str | None:
    return None if entry is None else orjson.dumps(dataclasses.asdict(entry)).decode()


async def _heal(conn: Connection, diff: Difference) -> str:
    """Hand a difference to the outbox where that is safe; return what became of it."""
    if diff.action is Action.REPORT:
        return "reported"
    assert isinstance(diff.ours, Ours)  # only the operator's books get healing actions
    assert diff.ours.outbox_id is not None
    # The outbox delivers it under the same transaction id (a cancellation under its debit's row),
    # so a delivery that did land meanwhile is only a replay at the operator.
    row = await conn.fetchrow(
        "SELECT id, state, action FROM croupier.outbox WHERE id = $1 FOR UPDATE", diff.ours.outbox_id
    )
    assert row is not None
    action = "cancel_debit" if diff.action is Action.CANCEL_AT_OPERATOR else row["action"]
    if row["state"] == "scheduled" and row["action"] == action:
        return "already_healing"
    await conn.execute(
        "UPDATE croupier.outbox SET state = 'scheduled', action = $2, due_at = now(),"
        " last_error = 'reconciliation: ' || $3 WHERE id = $1",
        row["id"],
        action,
        diff.reason,
    )
    return "healing"


async def run(
    pool: asyncpg.Pool,
    operator: str,
    lister: Lister,
    since: datetime,
    until: datetime,
    now: datetime,
    horizon_s: float,
    *,
    scheduled: bool = False,
    metrics: Metrics | None = None,
    settled: Sequence[Settled] = (),
) -> Summary:
    """Reconcile one operator's window, heal what is safe, record everything, and return a summary.

    `settled` are findings already acted on (stuck rounds), recorded with the run.
    """
    async with pool.acquire() as conn:
        rows = await conn.fetch(_OURS, operator, since, until)
    mine = ours_from_rows(rows)
    theirs = await read_theirs(lister, since, until)
    differences = reconcile(mine, theirs, now, horizon_s)
    window = Window(operator, since, until, now, horizon_s, scheduled)
    found = [*((diff, None) for diff in differences), *settled]
    return await _record(pool, window, "operator_wallet", len(mine), len(theirs), found, metrics)


# A ledger-backend operator's operations of the window, and any operation an entry of the window
# was booked for, each with its entries, a rollback's applied target, and a transfer's reversals.
_BOOKED = """
SELECT o.transaction_id, o.kind, o.state, o.player_id, o.currency, o.amount_minor, o.reversed,
    (SELECT coalesce(jsonb_agg(jsonb_build_array(e.player_id, e.currency, e.amount_minor) ORDER BY e.id),
        '[]') FROM croupier.entries e WHERE e.operation_id = o.id) AS entries,
    t.kind AS target_type, t.amount_minor AS target_amount_minor,
    (SELECT count(*) FROM croupier.operations r
        WHERE o.kind <> 'rollback' AND r.kind = 'rollback' AND r.provider = o.provider
        AND r.scope = o.scope AND r.reference_id = o.external_id AND r.reference_kind = o.kind
        AND r.state = 'applied' AND EXISTS (SELECT 1 FROM croupier.entries re
            WHERE re.operation_id = r.id AND re.amount_minor <> 0)) AS reversals
FROM croupier.operations o
LEFT JOIN croupier.operations t ON o.kind = 'rollback' AND t.provider = o.provider
    AND t.scope = o.scope AND t.kind = o.reference_kind AND t.external_id = o.reference_id
    AND t.state = 'applied'
WHERE o.operator = $1 AND o.kind IN ('debit', 'credit', 'rollback')
    AND ((o.created_at >= $2 AND o.created_at < $3) OR o.id IN (
        SELECT operation_id FROM croupier.entries
        WHERE operator = $1 AND kind = 'operation' AND created_at >= $2 AND created_at < $3))
"""

# Every account an entry of the window was booked to, its balance and all its entries, read in
# one statement so that both come from the same snapshot.
_ACCOUNTS = """
SELECT k.player_id, k.currency, coalesce(a.balance_minor, 0) AS balance_minor,
    (SELECT coalesce(sum(e.amount_minor), 0) FROM croupier.entries e
        WHERE e.operator = $1 AND e.player_id = k.player_id AND e.currency = k.currency)::bigint
        AS entries_minor
FROM (SELECT DISTINCT player_id, currency FROM croupier.entries
    WHERE operator = $1 AND created_at >= $2 AND created_at < $3) k
LEFT JOIN croupier.accounts a ON a.operator = $1 AND a.player_id = k.player_id AND a.currency = k.currency
"""


async def ledger_books(
    conn: Connection, operator: str, since: datetime, until: datetime
) -> tuple[list[Booked], list[Account]]:
    """Read a ledger-backend operator's operations with their entries, and its accounts, for a window."""
    booked = [
        Booked(
            uuid.UUID(bytes=row["transaction_id"].bytes),  # asyncpg's own UUID type is not orjson's
            row["kind"],
            row["state"],
            row["player_id"],
            row["currency"],
            row["amount_minor"],
            row["reversed"],
            tuple((str(p), str(c), int(a)) for p, c, a in orjson.loads(row["entries"])),
            row["target_type"],
            row["target_amount_minor"],
            row["reversals"],
        )
        for row in await conn.fetch(_BOOKED, operator, since, until)
    ]
    accounts = [Account(**dict(row)) for row in await conn.fetch(_ACCOUNTS, operator, since, until)]
    return booked, accounts


async def run_ledger(
    pool: asyncpg.Pool,
    operator: str,
    since: datetime,
    until: datetime,
    now: datetime,
    *,
    scheduled: bool = False,
    metrics: Metrics | None = None,
    settled: Sequence[Settled] = (),
) -> Summary:
    """Check a ledger-backend operator's books for a window, record every difference, and return a summary."""
    async with pool.acquire() as conn:
        booked, accounts = await ledger_books(conn, operator, since, until)
    differences = check_ledger(booked, accounts)
    window = Window(operator, since, until, now, 0.0, scheduled)
    found = [*((diff, None) for diff in differences), *settled]
    return await _record(pool, window, "ledger", len(booked), len(accounts), found, metrics)


@dataclass(frozen=True, slots=True)
class Window:
    """What a run covers: one operator, a time window, when it ran, and how."""

    operator: str
    since: datetime
    until: datetime
    now: datetime
    horizon_s: float
    scheduled: bool


async def _record(
    pool: asyncpg.Pool,
    window: Window,
    books: str,
    ours: int,
    theirs: int,
    found: Sequence[tuple[Difference, str | None]],
    metrics: Metrics | None,
) -> Summary:
    """Heal what is safe and record the run with every difference, in one transaction."""
    outcomes = []
    async with pool.acquire() as conn, conn.transaction():
        run_id = await conn.fetchval(
            "INSERT INTO croupier.reconciliations"
            " (operator, since, until, horizon_s, ours, theirs, started_at, scheduled, books)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            window.operator,
            window.since,
            window.until,
            window.horizon_s,
            ours,
            theirs,
            window.now,
            window.scheduled,
            books,
        )
        for diff, done in found:
            outcome = done or await _heal(conn, diff)
            outcomes.append(outcome)
            if metrics is not None:
                metrics.reconciliation_differences.labels(window.operator, diff.kind.value, outcome).inc()
            await conn.execute(
                "INSERT INTO croupier.reconciliation_differences (reconciliation_id, transaction_id,"
                " subject, kind, action, outcome, reason, ours, theirs)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb)",
                run_id,
                diff.transaction_id,
                diff.subject,
                diff.kind.value,
                diff.action.value,
                outcome,
                diff.reason,
                _json(diff.ours),
                _json(diff.theirs),
            )
    return Summary(run_id, ours, theirs, [diff for diff, _ in found], outcomes, books)


def theirs_from_listing(entries: Sequence[dict[str, Any]]) -> list[Theirs]:
    """Read the Operator Wallet API's listing entries, strictly."""
    found = []
    for entry in entries:
        amount = entry["amount_minor"]
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError(f"the operator listed amount_minor {amount!r}, not an integer")
        found.append(
            Theirs(
                uuid.UUID(str(entry["transaction_id"])),
                str(entry["type"]),
                str(entry["player_id"]),
                str(entry["currency"]),
                amount,
                str(entry["state"]),
                datetime.fromisoformat(str(entry["created_at"])),
                uuid.UUID(str(reference)) if (reference := entry.get("reference_transaction_id")) else None,
            )
        )
    return found


def seamless_lister(backend: SeamlessWallet) -> Lister:
    """Return a lister that reads an operator's Operator Wallet API v1 listing."""

    async def lister(since: datetime, until: datetime, after: int) -> Page:
        entries, cursor = await backend.transactions(since, until, after)
        return theirs_from_listing(entries), cursor

    return lister
