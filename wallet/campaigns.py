"""Free-round campaigns in PostgreSQL, and their progress read from the credits that name them."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from wallet.db import Connection

ID_PREFIX = "fr_"
STATES = ("active", "cancelled", "expired")
# 'expired' is read from the clock at query time, so a campaign never needs a job to expire it.
_STATE = (
    "CASE WHEN c.cancelled_at IS NOT NULL THEN 'cancelled'"
    " WHEN c.expires_at <= now() THEN 'expired' ELSE 'active' END"
)
_STATE_FILTER = {
    "active": "c.cancelled_at IS NULL AND c.expires_at > now()",
    "cancelled": "c.cancelled_at IS NOT NULL",
    "expired": "c.cancelled_at IS NULL AND c.expires_at <= now()",
}
_FIELDS = (
    "c.id, c.operator, c.name, c.provider, c.game_ids, c.currency, c.rounds, c.bet_minor, c.players,"
    f" c.expires_at, c.created_at, c.cancelled_at, {_STATE} AS state"
)
# A credit counts toward a campaign when it names it and is the campaign's operator, provider,
# currency and one of its players; paid (applied, or taken for delivery) and not reversed. Only
# free-round credits are rounds played: a bonus or promo total paid at the end is a win, not a round.
_PER_PLAYER = """
    SELECT o.campaign_id, o.player_id,
           count(DISTINCT o.round_id) FILTER (WHERE o.credit_kind = 'freeround') AS rounds_played,
           count(*) FILTER (WHERE o.amount_minor > 0) AS wins_count,
           coalesce(sum(o.amount_minor), 0)::bigint AS wins_minor,
           max(o.created_at) FILTER (WHERE o.amount_minor > 0) AS last_win_at
    FROM croupier.campaigns c
    JOIN croupier.operations o
      ON o.campaign_id = c.id AND o.operator = c.operator AND o.provider = c.provider
     AND o.currency = c.currency
    JOIN croupier.campaign_players p ON p.campaign_id = c.id AND p.player_id = o.player_id
    WHERE c.id = ANY($1::text[]) AND o.campaign_id = ANY($1::text[])
      AND o.kind = 'credit' AND o.state IN ('applied', 'queued')
      AND NOT o.reversed
    GROUP BY o.campaign_id, o.player_id
"""


def mint_id() -> str:
    """Return a new campaign id: short and URL-safe, as providers take it for a bonus code."""
    return ID_PREFIX + secrets.token_hex(10)


@dataclass(frozen=True, slots=True)
class NewCampaign:
    """A campaign as the operator asked for it, validated."""

    id: str
    operator: str
    name: str | None
    provider: str
    game_ids: tuple[str, ...]
    player_ids: tuple[str, ...]
    currency: str
    rounds: int
    bet_minor: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Progress:
    """Rounds played and wins paid, for one player or a whole campaign."""

    rounds_played: int = 0
    wins_count: int = 0
    wins_minor: int = 0


@dataclass(frozen=True, slots=True)
class PlayerProgress:
    """One player's progress through a campaign."""

    player_id: str
    progress: Progress
    rounds_left: int
    last_win_at: datetime | None


@dataclass(frozen=True, slots=True)
class Campaign:
    """A stored campaign, its state now, and its progress from the ledger."""

    id: str
    operator: str
    name: str | None
    provider: str
    game_ids: tuple[str, ...]
    currency: str
    rounds: int
    bet_minor: int
    players: int
    expires_at: datetime
    created_at: datetime
    cancelled_at: datetime | None
    state: str
    progress: Progress


def _campaign(row: asyncpg.Record, progress: Progress) -> Campaign:
    return Campaign(
        id=row["id"],
        operator=row["operator"],
        name=row["name"],
        provider=row["provider"],
        game_ids=tuple(row["game_ids"]),
        currency=row["currency"],
        rounds=int(row["rounds"]),
        bet_minor=int(row["bet_minor"]),
        players=int(row["players"]),
        expires_at=row["expires_at"],
        created_at=row["created_at"],
        cancelled_at=row["cancelled_at"],
        state=row["state"],
        progress=progress,
    )


async def _totals(conn: Connection, campaign_ids: Sequence[str]) -> dict[str, Progress]:
    if not campaign_ids:
        return {}
    rows = await conn.fetch(
        f"SELECT campaign_id, sum(rounds_played)::bigint AS rounds_played,"
        " sum(wins_count)::bigint AS wins_count, sum(wins_minor)::bigint AS wins_minor"
        f" FROM ({_PER_PLAYER}) AS per_player GROUP BY campaign_id",
        list(campaign_ids),
    )
    return {
        r["campaign_id"]: Progress(int(r["rounds_played"]), int(r["wins_count"]), int(r["wins_minor"]))
        for r in rows
    }


async def _with_totals(conn: Connection, rows: Sequence[asyncpg.Record]) -> list[Campaign]:
    totals = await _totals(conn, [r["id"] for r in rows])
    return [_campaign(r, totals.get(r["id"], Progress())) for r in rows]


async def create(conn: Connection, new: NewCampaign) -> Campaign:
    """Store a campaign and its players in one transaction, and return it."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "INSERT INTO croupier.campaigns AS c (id, operator, name, provider, game_ids, currency,"
            " rounds, bet_minor, players, expires_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            f" RETURNING {_FIELDS}",
            new.id,
            new.operator,
            new.name,
            new.provider,
            list(new.game_ids),
            new.currency,
            new.rounds,
            new.bet_minor,
            len(new.player_ids),
            new.expires_at,
        )
        await conn.execute(
            "INSERT INTO croupier.campaign_players (campaign_id, operator, player_id)"
            " SELECT $1, $2, unnest($3::text[])",
            new.id,
            new.operator,
            list(new.player_ids),
        )
    assert row is not None
    return _campaign(row, Progress())


async def get(conn: Connection, operator: str, campaign_id: str) -> Campaign | None:
    """Return an operator's campaign with its totals, or None (another operator's is None too)."""
    row = await conn.fetchrow(
        f"SELECT {_FIELDS} FROM croupier.campaigns c WHERE c.id = $1 AND c.operator = $2",
        campaign_id,
        operator,
    )
    if row is None:
        return None
    return (await _with_totals(conn, [row]))[0]


async def listing(
    conn: Connection,
    operator: str,
    *,
    state: str | None = None,
    provider: str | None = None,
    player_id: str | None = None,
    limit: int = 1000,
) -> list[Campaign]:
    """Return an operator's campaigns, newest first, filtered by state, provider and player."""
    where = ["c.operator = $1"]
    args: list[Any] = [operator]
    if state is not None:
        where.append(_STATE_FILTER[state])
    if provider is not None:
        args.append(provider)
        where.append(f"c.provider = ${len(args)}")
    if player_id is not None:
        args.append(player_id)
        where.append(
            "EXISTS (SELECT 1 FROM croupier.campaign_players p"
            f" WHERE p.campaign_id = c.id AND p.player_id = ${len(args)})"
        )
    args.append(limit)
    rows = await conn.fetch(
        f"SELECT {_FIELDS} FROM croupier.campaigns c WHERE {' AND '.join(where)}"
        f" ORDER BY c.created_at DESC, c.id DESC LIMIT ${len(args)}",
        *args,
    )
    return await _with_totals(conn, rows)


async def player_progress(conn: Connection, campaign: Campaign) -> list[PlayerProgress]:
    """Return every player's progress through a campaign, in player order."""
    rows = await conn.fetch(
        f"WITH per_player AS ({_PER_PLAYER})"
        " SELECT p.player_id, coalesce(pp.rounds_played, 0) AS rounds_played,"
        " coalesce(pp.wins_count, 0) AS wins_count, coalesce(pp.wins_minor, 0) AS wins_minor,"
        " pp.last_win_at"
        " FROM croupier.campaign_players p"
        " LEFT JOIN per_player pp ON pp.player_id = p.player_id"
        " WHERE p.campaign_id = $2 ORDER BY p.player_id",
        [campaign.id],
        campaign.id,
    )
    return [
        PlayerProgress(
            player_id=r["player_id"],
            progress=Progress(int(r["rounds_played"]), int(r["wins_count"]), int(r["wins_minor"])),
            rounds_left=max(0, campaign.rounds - int(r["rounds_played"])),
            last_win_at=r["last_win_at"],
        )
        for r in rows
    ]


async def cancel(conn: Connection, operator: str, campaign_id: str) -> Campaign | None:
    """Cancel an active campaign and return it; None if it is not this operator's or not active."""
    row = await conn.fetchrow(
        "UPDATE croupier.campaigns AS c SET cancelled_at = now()"
        " WHERE c.id = $1 AND c.operator = $2 AND c.cancelled_at IS NULL AND c.expires_at > now()"
        f" RETURNING {_FIELDS}",
        campaign_id,
        operator,
    )
    if row is None:
        return None
    return (await _with_totals(conn, [row]))[0]


async def sole_player(conn: Connection, provider: str, campaign_id: str) -> tuple[str, str, str] | None:
    """Return (operator, player, currency) of a provider's campaign awarded to exactly one player."""
    row = await conn.fetchrow(
        "SELECT c.operator, c.currency, min(p.player_id) AS player_id"
        " FROM croupier.campaigns c JOIN croupier.campaign_players p ON p.campaign_id = c.id"
        " WHERE c.id = $1 AND c.provider = $2 GROUP BY c.id HAVING count(*) = 1",
        campaign_id,
        provider,
    )
    return None if row is None else (row["operator"], row["player_id"], row["currency"])
