"""Stuck rounds: rounds still open past their provider's horizon, with the bets left unsettled in them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson

from wallet.db import Connection


@dataclass(frozen=True, slots=True)
class OpenBet:
    """An applied bet of a stuck round that nothing has reversed."""

    external_id: str
    amount_minor: int
    scope_by_player: bool


@dataclass(frozen=True, slots=True)
class StuckRound:
    """A round still open past its provider's horizon, as the ledger holds it."""

    provider: str
    operator: str
    player_id: str
    round_id: str
    game_id: str | None
    currency: str
    opened_at: datetime
    wins_count: int
    bets: Sequence[OpenBet]

    @property
    def subject(self) -> str:
        """Return the round as a reconciliation names it: provider/player/round."""
        return f"{self.provider}/{self.player_id}/{self.round_id}"


_OPEN = """
SELECT r.provider, r.operator, r.player_id, r.round_id, r.game_id, r.currency, r.opened_at, r.wins_count,
    coalesce((SELECT jsonb_agg(jsonb_build_array(o.external_id, o.amount_minor, o.scope <> '') ORDER BY o.id)
        FROM croupier.operations o
        WHERE o.provider = r.provider AND o.operator = r.operator AND o.player_id = r.player_id
        AND o.round_id = r.round_id AND o.kind = 'debit' AND o.state = 'applied' AND NOT o.reversed),
        '[]') AS bets
FROM croupier.rounds r
WHERE r.operator = $1 AND r.provider = $2 AND r.state = 'open' AND r.opened_at >= $3 AND r.opened_at < $4
ORDER BY r.opened_at, r.player_id, r.round_id
"""


async def open_rounds(
    conn: Connection, operator: str, provider: str, opened_since: datetime, opened_until: datetime
) -> list[StuckRound]:
    """Return an operator's rounds with one provider opened in a window and open still."""
    return [
        StuckRound(
            row["provider"],
            row["operator"],
            row["player_id"],
            row["round_id"],
            row["game_id"],
            row["currency"],
            row["opened_at"],
            row["wins_count"],
            tuple(
                OpenBet(str(ext), int(amount), bool(scoped))
                for ext, amount, scoped in orjson.loads(row["bets"])
            ),
        )
        for row in await conn.fetch(_OPEN, operator, provider, opened_since, opened_until)
    ]
