"""Player sessions in Redis: a fast look-up, never a guard for money."""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass

import orjson
import redis.asyncio as aioredis

DEFAULT_TTL_S = 4 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    """A player's game session: who plays what, in which currency."""

    token: str
    operator: str
    player_id: str
    currency: str
    provider: str
    game_id: str
    created_at: float


class SessionStore:
    """Sessions keyed by token; the player's hash tag keeps a cluster's keys for one player together."""

    def __init__(self, redis: aioredis.Redis, prefix: str = "croupier") -> None:
        self.redis = redis
        self.prefix = prefix

    def _key(self, token: str) -> str:
        return f"{self.prefix}:session:{token}"

    async def create(
        self,
        operator: str,
        player_id: str,
        currency: str,
        provider: str,
        game_id: str,
        ttl_s: int = DEFAULT_TTL_S,
    ) -> Session:
        """Open a session and return it with a fresh unguessable token."""
        session = Session(
            token=secrets.token_urlsafe(24),
            operator=operator,
            player_id=player_id,
            currency=currency,
            provider=provider,
            game_id=game_id,
            created_at=time.time(),
        )
        await self.redis.set(self._key(session.token), orjson.dumps(asdict(session)), ex=ttl_s)
        return session

    async def get(self, token: str) -> Session | None:
        """Return the live session for a token, or None if it is unknown or expired."""
        if not token or len(token) > 256:  # noqa: PLR2004 -- longer than any token we issue
            return None
        raw = await self.redis.get(self._key(token))
        if raw is None:
            return None
        return Session(**orjson.loads(raw))

    async def end(self, token: str) -> None:
        """End a session at once."""
        await self.redis.delete(self._key(token))
