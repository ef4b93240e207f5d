"""Reports from the ledger, in SQL: gross gaming revenue per operator, provider, game, currency and day."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from datetime import UTC, date, datetime, timedelta

from wallet.db import Connection

# Every applied money movement is one entry; its operation says what it was. A day is a UTC day of
# the entry. A refund's game is its round's when the provider did not name one.
_GGR = """
SELECT (e.created_at AT TIME ZONE 'UTC')::date AS day,
    o.provider,
    coalesce(o.game_id, r.game_id, '') AS game_id,
    e.currency,
    coalesce(sum(-e.amount_minor) FILTER (WHERE o.kind = 'debit'), 0)::bigint AS bets_minor,
    coalesce(sum(e.amount_minor) FILTER (
        WHERE o.kind = 'credit' AND o.credit_kind IS DISTINCT FROM 'freeround'), 0)::bigint AS wins_minor,
    coalesce(sum(e.amount_minor) FILTER (
        WHERE o.kind = 'credit' AND o.credit_kind = 'freeround'), 0)::bigint AS freeround_wins_minor,
    coalesce(sum(e.amount_minor) FILTER (WHERE o.kind = 'rollback'), 0)::bigint AS refunds_minor,
    (-sum(e.amount_minor))::bigint AS ggr_minor,
    count(DISTINCT (o.player_id, o.round_id)) AS rounds,
    count(DISTINCT o.player_id) AS players
FROM croupier.entries e
JOIN croupier.operations o ON o.id = e.operation_id
LEFT JOIN croupier.rounds r
    ON r.provider = o.provider AND r.operator = o.operator
    AND r.player_id = o.player_id AND r.round_id = o.round_id
WHERE e.operator = $1 AND e.kind = 'operation'
    AND e.created_at >= $2::date::timestamp AT TIME ZONE 'UTC'
    AND e.created_at < ($3::date + 1)::timestamp AT TIME ZONE 'UTC'
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4
"""


@dataclass(frozen=True, slots=True)
class GgrRow:
    """One day of one game in one currency: what was bet, paid, refunded, and what the house kept."""

    day: date
    provider: str
    game_id: str
    currency: str
    bets_minor: int
    wins_minor: int
    freeround_wins_minor: int
    refunds_minor: int
    ggr_minor: int
    rounds: int
    players: int


_COLUMNS = ", ".join(f.name for f in fields(GgrRow))
# A day counts as closed this long after its end: a transaction that began before midnight may
# still commit entries stamped with that day for a moment after it.
CLOSING_GRACE = timedelta(minutes=5)


async def live(conn: Connection, operator: str, since: date, until: date) -> list[GgrRow]:
    """Return GGR rows computed from the entries themselves (the reference, and today's part)."""
    rows = await conn.fetch(_GGR, operator, since, until)
    return [GgrRow(**dict(row)) for row in rows]


async def build_day(conn: Connection, operator: str, day: date) -> None:
    """Roll a closed day up into ggr_daily, once; building it again changes nothing."""
    async with conn.transaction():
        if not await conn.fetchval(
            "INSERT INTO croupier.ggr_days (operator, day) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING true",
            operator,
            day,
        ):
            return
        await conn.execute(
            f"INSERT INTO croupier.ggr_daily (operator, {_COLUMNS}) SELECT $1::text, * FROM ({_GGR}) AS g",
            operator,
            day,
            day,
        )


async def ggr(
    conn: Connection, operator: str, since: date, until: date, now: datetime | None = None
) -> list[GgrRow]:
    """Return an operator's GGR rows for the UTC days from `since` to `until`, both included.

    Closed days come from their roll-ups (built here if missing), the day still open from the entries.
    """
    now = now or datetime.now(UTC)
    first_open = (now - CLOSING_GRACE).date()
    closed_until = min(until, first_open - timedelta(days=1))
    rows: list[GgrRow] = []
    if since <= closed_until:
        built = {
            r["day"]
            for r in await conn.fetch(
                "SELECT day FROM croupier.ggr_days WHERE operator = $1 AND day BETWEEN $2 AND $3",
                operator,
                since,
                closed_until,
            )
        }
        day = since
        while day <= closed_until:
            if day not in built:
                await build_day(conn, operator, day)
            day += timedelta(days=1)
        stored = await conn.fetch(
            f"SELECT {_COLUMNS} FROM croupier.ggr_daily WHERE operator = $1 AND day BETWEEN $2 AND $3"
            " ORDER BY day, provider, game_id, currency",
            operator,
            since,
            closed_until,
        )
        rows += [GgrRow(**dict(r)) for r in stored]
    if until >= first_open:
        rows += await live(conn, operator, max(since, first_open), until)
    return rows


def as_csv(rows: Sequence[GgrRow]) -> str:
    """Return rows as CSV with a header, amounts in minor units."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f.name for f in fields(GgrRow)])
    for row in rows:
        writer.writerow(astuple(row))
    return out.getvalue()
