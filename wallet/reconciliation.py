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
from wallet.reconcile import Action, Delivery, Difference, Ours, Theirs, Told, reconcile

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


def _json(entry: Ours | Theirs | None) -> str | None:
    return None if entry is None else orjson.dumps(dataclasses.asdict(entry)).decode()


async def _heal(conn: Connection, diff: Difference) -> str:
    """Hand a difference to the outbox where that is safe; return what became of it."""
    if diff.action is Action.REPORT:
        return "reported"
    assert diff.ours is not None
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
) -> Summary:
    """Reconcile one operator's window, heal what is safe, record everything, and return a summary."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(_OURS, operator, since, until)
    mine = ours_from_rows(rows)
    theirs = await read_theirs(lister, since, until)
    differences = reconcile(mine, theirs, now, horizon_s)
    outcomes = []
    async with pool.acquire() as conn, conn.transaction():
        run_id = await conn.fetchval(
            "INSERT INTO croupier.reconciliations"
            " (operator, since, until, horizon_s, ours, theirs, started_at, scheduled)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            operator,
            since,
            until,
            horizon_s,
            len(mine),
            len(theirs),
            now,
            scheduled,
        )
        for diff in differences:
            outcome = await _heal(conn, diff)
            outcomes.append(outcome)
            if metrics is not None:
                metrics.reconciliation_differences.labels(operator, diff.kind.value, outcome).inc()
            await conn.execute(
                "INSERT INTO croupier.reconciliation_differences"
                " (reconciliation_id, transaction_id, kind, action, outcome, reason, ours, theirs)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb)",
                run_id,
                diff.transaction_id,
                diff.kind.value,
                diff.action.value,
                outcome,
                diff.reason,
                _json(diff.ours),
                _json(diff.theirs),
            )
    return Summary(run_id, len(mine), len(theirs), differences, outcomes)


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
