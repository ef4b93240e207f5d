"""Round and transaction history: read-only queries over the ledger, and what each row's state means."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg

from wallet.db import Connection


class TransactionStatus(StrEnum):
    """What became of one stored operation, as support staff read it."""

    APPLIED = "applied"
    REJECTED = "rejected"
    ROLLED_BACK = "rolled_back"
    UNKNOWN = "unknown"
    PENDING_DELIVERY = "pending_delivery"
    DELIVERY_FAILED = "delivery_failed"


class Settlement(StrEnum):
    """The one-word answer for a round: did it settle, roll back, or is it still queued."""

    OPEN = "open"
    SETTLED = "settled"
    ROLLED_BACK = "rolled_back"
    PENDING_DELIVERY = "pending_delivery"
    UNKNOWN = "unknown"
    DELIVERY_FAILED = "delivery_failed"


# A transaction's status from its operation row (o) and its outbox row (x, all NULL when none).
# How the core moves those states (wallet/core.py, forwarding.py, outbox.py):
# - Every operation is claimed 'pending' and leaves that state in the same database transaction,
#   except on the seamless backend while its call to the operator is in flight (or if the node
#   died during that call).
# - A seamless debit writes an outbox row 'cancel_debit' with its intent. A definite answer
#   cancels that row and settles the debit 'applied', or 'rejected' with the operator's reason.
#   With no definite answer the debit is 'rejected' at once (reason operator_unknown) and the row
#   is made due: the outbox sends the operator a rollback of it, and the row ends 'delivered', or
#   'dead' if the operator refuses the rollback for good. The debit's row stays 'rejected'.
# - A seamless credit or rollback writes an outbox row of its own action. A definite answer
#   settles it 'applied' or 'rejected'; with none it is 'queued' (the provider was told it was
#   taken) and the outbox delivers it: 'applied' once acknowledged, while a definite refusal of a
#   queued one leaves it 'queued' and the row 'dead' (owed money is never silently dropped).
# - A rollback marks what it reverses `reversed` as soon as it is taken (undone if the operator
#   refuses it); a rollback that arrives before its debit stores a 'tombstone' under the debit's
#   key, so the debit is refused when it comes. On the ledger backend there is no outbox at all.
# Hence, first match wins:
# - delivery_failed: the outbox row is dead: the operator refused for good, a person must act;
# - unknown: a debit still pending, or one declined for an unknown outcome whose cancellation the
#   operator has not acknowledged yet (the stake may still be held there);
# - rolled_back: a tombstone, or an applied debit or credit that a rollback reversed;
# - rejected: refused, nothing moved (also a debit whose cancellation the operator acknowledged);
# - applied: applied (or queued whose outbox row was delivered);
# - pending_delivery: queued, or a credit or rollback whose call is still in flight.
_STATUS = """CASE
 WHEN x.state = 'dead' THEN 'delivery_failed'
 WHEN o.kind = 'debit' AND (o.state = 'pending'
      OR (o.state = 'rejected' AND x.action = 'cancel_debit' AND x.state = 'scheduled')) THEN 'unknown'
 WHEN o.state = 'tombstone' OR (o.state = 'applied' AND o.reversed) THEN 'rolled_back'
 WHEN o.state = 'rejected' THEN 'rejected'
 WHEN o.state = 'applied' OR (o.state = 'queued' AND x.state = 'delivered') THEN 'applied'
 ELSE 'pending_delivery'
END"""

_FROM = " FROM croupier.operations o LEFT JOIN croupier.outbox x ON x.operation_id = o.id"

_TRANSACTION = (
    "SELECT o.transaction_id, o.provider, o.external_id, o.kind, o.credit_kind, o.player_id, o.round_id,"
    " o.game_id, o.currency, o.amount_minor, o.reason, o.reference_id, o.campaign_id, o.created_at,"
    f" o.updated_at, {_STATUS} AS status, x.state AS delivery_state, x.attempts AS delivery_attempts,"
    f" x.last_error AS delivery_error, x.delivered_at{_FROM}"
)


def _round_operations(provider: str, operator: str, player_id: str, round_id: str) -> str:
    """Return SQL for the ids of a round's operations, given SQL expressions for its key."""
    # A rollback counts in the round of what it reverses, and many protocols send it with no round
    # id (or another one), so it is found through its target as well as by its own round id.
    return (
        f"SELECT m.id FROM croupier.operations m WHERE m.provider = {provider} AND m.operator = {operator}"
        f" AND m.player_id = {player_id} AND m.round_id = {round_id}"
        " UNION ALL SELECT rb.id FROM croupier.operations t JOIN croupier.operations rb"
        " ON rb.kind = 'rollback' AND rb.provider = t.provider AND rb.scope = t.scope"
        " AND rb.reference_id = t.external_id AND rb.reference_kind = t.kind"
        " AND rb.operator = t.operator AND rb.player_id = t.player_id"
        f" WHERE t.provider = {provider} AND t.operator = {operator} AND t.player_id = {player_id}"
        f" AND t.round_id = {round_id} AND t.kind IN ('debit', 'credit')"
        f" AND rb.round_id IS DISTINCT FROM {round_id}"
    )


_ROUND_TRANSACTIONS = (
    f"{_TRANSACTION} WHERE o.id IN ({_round_operations('$1', '$2', '$3', '$4')}) ORDER BY o.id"
)
# The page is cut first, so the statuses are worked out for its rounds only.
_PAGE = (
    "WITH page AS (SELECT * FROM croupier.rounds r WHERE {where} ORDER BY r.opened_at DESC, r.id DESC"
    " LIMIT {limit}) SELECT page.*, s.statuses FROM page CROSS JOIN LATERAL"
    f" (SELECT coalesce(array_agg(DISTINCT {_STATUS}), ARRAY[]::text[]) AS statuses{_FROM}"
    " WHERE o.id IN ("
    + _round_operations("page.provider", "page.operator", "page.player_id", "page.round_id")
    + ")) s ORDER BY page.opened_at DESC, page.id DESC"
)


@dataclass(frozen=True, slots=True)
class RoundQuery:
    """Which of an operator's rounds to list: one player's, in a window, a page after a position."""

    operator: str
    player_id: str
    since: datetime | None = None
    until: datetime | None = None
    provider: str | None = None
    round_id: str | None = None
    # The (opened_at, id) of the last round of the previous page.
    after: tuple[datetime, uuid.UUID] | None = None
    limit: int = 100


async def list_rounds(conn: Connection, query: RoundQuery) -> list[asyncpg.Record]:
    """Return a page of rounds, newest first, each with the distinct statuses of its transactions."""
    conditions = ["r.operator = $1", "r.player_id = $2"]
    args: list[object] = [query.operator, query.player_id]

    def add(condition: str, *values: object) -> None:
        numbers = [f"${len(args) + i + 1}" for i in range(len(values))]
        conditions.append(condition.format(*numbers))
        args.extend(values)

    if query.since is not None:
        add("r.opened_at >= {}", query.since)
    if query.until is not None:
        add("r.opened_at < {}", query.until)
    if query.provider is not None:
        add("r.provider = {}", query.provider)
    if query.round_id is not None:
        add("r.round_id = {}", query.round_id)
    if query.after is not None:
        add("(r.opened_at, r.id) < ({}, {})", *query.after)
    args.append(query.limit)
    sql = _PAGE.format(where=" AND ".join(conditions), limit=f"${len(args)}")
    return await conn.fetch(sql, *args)


async def get_round(
    conn: Connection, operator: str, round_uuid: uuid.UUID
) -> tuple[asyncpg.Record, list[asyncpg.Record]] | None:
    """Return one of an operator's rounds and its transactions (oldest first), or None."""
    # One snapshot, so the round's counters and its transactions tell the same story.
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        round_ = await conn.fetchrow(
            "SELECT * FROM croupier.rounds WHERE id = $1 AND operator = $2", round_uuid, operator
        )
        if round_ is None:
            return None
        transactions = await conn.fetch(
            _ROUND_TRANSACTIONS,
            round_["provider"],
            round_["operator"],
            round_["player_id"],
            round_["round_id"],
        )
    return round_, transactions


async def find_transactions(
    conn: Connection, operator: str, provider: str, external_id: str
) -> list[asyncpg.Record]:
    """Return every operation of an operator's players stored under a provider's transaction id."""
    return await conn.fetch(
        f"{_TRANSACTION} WHERE o.provider = $1 AND o.external_id = $2 AND o.operator = $3 ORDER BY o.id",
        provider,
        external_id,
        operator,
    )


def settlement(round_: asyncpg.Record, statuses: Collection[str]) -> Settlement:
    """Return a round's one-word answer from its counters and its transactions' statuses."""
    for status, answer in (
        (TransactionStatus.UNKNOWN, Settlement.UNKNOWN),
        (TransactionStatus.DELIVERY_FAILED, Settlement.DELIVERY_FAILED),
        (TransactionStatus.PENDING_DELIVERY, Settlement.PENDING_DELIVERY),
    ):
        if status in statuses:
            return answer
    if round_["bets_count"] > 0 and round_["live_bets"] == 0 and round_["refunds_count"] > 0:
        return Settlement.ROLLED_BACK
    # Nothing is in doubt or in flight here, so every bet and win counted is applied at the
    # operator. A round ends by its end-of-round message, or by the rule its protocol declares
    # when it has none (Evolution's: every bet settled), so 'closed' is the one test.
    if round_["state"] == "closed":
        return Settlement.SETTLED
    return Settlement.OPEN


def statuses_of(transactions: Sequence[asyncpg.Record]) -> set[str]:
    """Return the distinct statuses of some transactions."""
    return {str(t["status"]) for t in transactions}
