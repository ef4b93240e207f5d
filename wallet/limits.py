"""Responsible gaming: a player's limits and block, read where a bet or a launch is decided."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from wallet.db import Connection
from wallet.policy import OperatorPolicy


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


async def for_player(conn: Connection, policy: OperatorPolicy, player_id: str) -> PlayerLimits:
    """Return the limits in force for a player (stub until the player_limits table exists)."""
    del conn  # read from the player_limits table once it exists
    return PlayerLimits(
        operator=policy.name,
        player_id=player_id,
        session_limit_s=policy.session_limit_s,
        reality_check_s=policy.reality_check_s,
    )
