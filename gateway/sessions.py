"""Player sessions: a JWT the provider carries, and the session it names in Redis (never a money guard)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from dataclasses import asdict, dataclass

import orjson
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.lock import Lock

from gateway.tokens import SessionTokens

DEFAULT_TTL_S = 4 * 3600
# A launch holds its lock this long at most (it only reads and writes Redis and builds a URL).
LAUNCH_LOCK_S = 5
DEMO_SUFFIX = ".demo"
# Sessions a node keeps at most; past it the cache starts afresh (a bounded, rarely met case).
CACHE_MAX = 100_000
# After a lost subscription, wait this long before subscribing again.
RESUBSCRIBE_S = 1.0
# How often the follower looks up from its channel to see whether it should stop.
FOLLOW_POLL_S = 0.5

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Session:
    """A player's game session: who plays what, in which currency, until when."""

    token: str
    session_id: str
    # The operator whose wallet pays: for a demo session, that operator's play-money ledger.
    operator: str
    player_id: str
    currency: str
    provider: str
    game_id: str
    created_at: float
    expires_at: float
    mode: str = "real"
    country: str | None = None
    language: str = "en"
    device: str = "desktop"
    jurisdiction: str | None = None
    reality_check_s: int | None = None

    @property
    def owner(self) -> str:
        """Return the operator that opened the session (the same for real and demo play)."""
        return self.operator.removesuffix(DEMO_SUFFIX)


class SessionStore:
    """Sessions by id, with each player's open sessions indexed; tokens are verified JWTs."""

    def __init__(
        self, redis: aioredis.Redis, tokens: SessionTokens, prefix: str = "croupier", cache_s: float = 0.0
    ) -> None:
        self.redis = redis
        self.tokens = tokens
        self.prefix = prefix
        # Each node keeps the sessions it has read for cache_s, so a bet costs no Redis round trip.
        # An ended session is published and every subscribed node drops it at once; cache_s bounds
        # how long a node that missed the message (or a Redis that lost the key) still honours it.
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, Session]] = {}
        self._subscribed = False
        self._following = False

    @property
    def ended_channel(self) -> str:
        """Return the channel on which ended session ids are published to every node."""
        return f"{self.prefix}:sessions:ended"

    def _cached(self, session_id: str) -> Session | None:
        found = self._cache.get(session_id)
        if found is None:
            return None
        now = time.time()
        until, session = found
        if until <= now or session.expires_at <= now or not self._subscribed:
            self._cache.pop(session_id, None)
            return None
        return session

    def _remember(self, session: Session) -> None:
        if self.cache_s <= 0 or not self._subscribed:
            return
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()
        self._cache[session.session_id] = (time.time() + self.cache_s, session)

    def forget_cached(self) -> None:
        """Drop every session this node keeps, as a node starting afresh would have none."""
        self._cache.clear()

    async def follow_ended(self, ready: asyncio.Event | None = None) -> None:
        """Drop sessions other nodes end, until stopped; while unsubscribed, nothing is cached."""
        self._following = True
        while self._following:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.ended_channel)
                # Messages may have been missed while unsubscribed: start from an empty cache.
                self._cache.clear()
                self._subscribed = True
                if ready is not None:
                    ready.set()
                while self._following:
                    # A bounded wait, so stopping never depends on a cancellation reaching the socket.
                    message = await pubsub.get_message(timeout=FOLLOW_POLL_S)
                    data = message.get("data") if message else None
                    if isinstance(data, bytes):
                        self._cache.pop(data.decode(), None)
            except (OSError, redis.exceptions.RedisError) as exc:
                log.warning("session eviction channel lost, caching off until it is back: %s", exc)
            finally:
                self._subscribed = False
                self._cache.clear()
                with contextlib.suppress(OSError, redis.exceptions.RedisError):
                    await pubsub.aclose()
            if self._following:
                await asyncio.sleep(RESUBSCRIBE_S)

    def stop_following(self) -> None:
        """Make follow_ended return within FOLLOW_POLL_S; nothing is cached after."""
        self._following = False
        self._subscribed = False
        self._cache.clear()

    def _key(self, session_id: str) -> str:
        return f"{self.prefix}:session:{session_id}"

    def _player_key(self, operator: str, player_id: str) -> str:
        # The hash tag keeps one player's index in one cluster slot.
        return f"{self.prefix}:{{{operator.removesuffix(DEMO_SUFFIX)}/{player_id}}}:sessions"

    async def create(
        self,
        operator: str,
        player_id: str,
        currency: str,
        provider: str,
        game_id: str,
        ttl_s: int = DEFAULT_TTL_S,
        *,
        mode: str = "real",
        country: str | None = None,
        language: str = "en",
        device: str = "desktop",
        jurisdiction: str | None = None,
        reality_check_s: int | None = None,
    ) -> Session:
        """Open a session and return it with a freshly signed token."""
        now = time.time()
        session_id = secrets.token_urlsafe(16)
        session = Session(
            token=self.tokens.issue(session_id, ttl_s, now),
            session_id=session_id,
            operator=operator,
            player_id=player_id,
            currency=currency,
            provider=provider,
            game_id=game_id,
            created_at=now,
            expires_at=now + ttl_s,
            mode=mode,
            country=country,
            language=language,
            device=device,
            jurisdiction=jurisdiction,
            reality_check_s=reality_check_s,
        )
        index = self._player_key(operator, player_id)
        # The index lives as long as the player's longest session (Redis 6.2 has no EXPIRE GT).
        index_ttl_s = max(ttl_s, int(await self.redis.ttl(index)))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self._key(session_id), orjson.dumps(asdict(session)), ex=ttl_s)
            pipe.zadd(index, {session_id: session.expires_at})
            pipe.expire(index, index_ttl_s)
            await pipe.execute()
        return session

    async def successor(self, session: Session) -> Session:
        """Open a session that continues another (a provider's session refresh): same facts, same end."""
        # Keeping the end keeps a responsible-gaming session limit: a refresh never extends play.
        remaining_s = max(1, math.ceil(session.expires_at - time.time()))
        return await self.create(
            session.operator,
            session.player_id,
            session.currency,
            session.provider,
            session.game_id,
            remaining_s,
            mode=session.mode,
            country=session.country,
            language=session.language,
            device=session.device,
            jurisdiction=session.jurisdiction,
            reality_check_s=session.reality_check_s,
        )

    def launch_lock(self, operator: str, player_id: str, provider: str, game_id: str) -> Lock:
        """Return a lock that serialises one player's launches of one game across every node."""
        key = f"{self._player_key(operator, player_id)}:launch:{provider}:{game_id}"
        return self.redis.lock(key, timeout=LAUNCH_LOCK_S, blocking_timeout=LAUNCH_LOCK_S)

    async def get(self, token: str) -> Session | None:
        """Return the live session a token names, or None if forged, expired or ended."""
        session_id = self.tokens.session_id(token)
        if session_id is None:
            return None
        return await self.by_id(session_id)

    async def by_id(self, session_id: str) -> Session | None:
        """Return a live session by its id, or None."""
        cached = self._cached(session_id)
        if cached is not None:
            return cached
        raw = await self.redis.get(self._key(session_id))
        if raw is None:
            return None
        session = Session(**orjson.loads(raw))
        self._remember(session)
        return session

    async def of_player(self, operator: str, player_id: str) -> list[Session]:
        """Return a player's live sessions (real and demo), oldest first."""
        index = self._player_key(operator, player_id)
        await self.redis.zremrangebyscore(index, "-inf", time.time())
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in await self.redis.zrange(index, 0, -1)]
        found = [await self.by_id(i) for i in ids]
        live = [s for s in found if s is not None]
        return sorted(live, key=lambda s: s.created_at)

    async def end(self, token: str) -> None:
        """End the session a token names, at once."""
        session_id = self.tokens.session_id(token)
        if session_id is not None:
            await self.end_id(session_id)

    async def end_id(self, session_id: str) -> Session | None:
        """End a session by id at once (revocation) and return what it was, if it was live."""
        session = await self.by_id(session_id)
        self._cache.pop(session_id, None)
        await self.redis.delete(self._key(session_id))
        # Every node drops it from its cache; one that misses this honours it for cache_s at most.
        await self.redis.publish(self.ended_channel, session_id)
        if session is not None:
            await self.redis.zrem(self._player_key(session.operator, session.player_id), session_id)
        return session

    async def end_player(self, operator: str, player_id: str) -> int:
        """End every live session of a player (a block takes effect at once); return how many."""
        sessions = await self.of_player(operator, player_id)
        for session in sessions:
            await self.end_id(session.session_id)
        return len(sessions)
