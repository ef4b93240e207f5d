"""Session tokens: JWTs signed with the active key, verified by `kid`, so keys rotate without a cut."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator

import jwt
import orjson
import pytest
import redis.asyncio as aioredis

from gateway.sessions import SessionStore
from gateway.tokens import ALGORITHM, SessionTokens

OLD, NEW = b"old session key, 32 bytes or more!", b"new session key, 32 bytes or more!"


def test_a_token_names_its_session_and_nothing_else_verifies() -> None:
    """A genuine token gives its session id; forged, tampered, unsigned or foreign tokens give None."""
    tokens = SessionTokens({"k1": OLD}, "k1")
    token = tokens.issue("sid-1", 600)
    assert jwt.get_unverified_header(token)["kid"] == "k1"
    assert tokens.session_id(token) == "sid-1"
    head, _, signature = token.split(".")
    claims = {"sid": "sid-2", "iat": 1, "exp": 2**40}
    forged = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    strangers = jwt.encode(claims, b"x" * 32, ALGORITHM, headers={"kid": "k1"})
    for bad in (f"{head}.{forged}.{signature}", unsigned, strangers, "", "x" * 600):
        assert tokens.session_id(bad) is None, bad


def test_keys_rotate_old_tokens_verify_until_their_key_is_removed() -> None:
    """A new active key signs new tokens; tokens of the old key verify while it is still configured."""
    before = SessionTokens({"k1": OLD}, "k1")
    old_token = before.issue("sid-old", 600)
    during = SessionTokens({"k1": OLD, "k2": NEW}, "k2")
    new_token = during.issue("sid-new", 600)
    assert jwt.get_unverified_header(new_token)["kid"] == "k2"
    assert (during.session_id(old_token), during.session_id(new_token)) == ("sid-old", "sid-new")
    after = SessionTokens({"k2": NEW}, "k2")
    assert (after.session_id(old_token), after.session_id(new_token)) == (None, "sid-new")
    with pytest.raises(ValueError, match="active"):
        SessionTokens({"k1": OLD}, "k2")


def test_an_expired_token_stops_even_after_it_was_verified_once() -> None:
    """The per-node memory of verified tokens keeps each token's expiry."""
    tokens = SessionTokens({"k1": OLD}, "k1")
    now = time.time()
    token = tokens.issue("sid-1", 2, now_s=now - 1)
    assert tokens.session_id(token) == "sid-1"
    time.sleep(1.2)
    assert tokens.session_id(token) is None
    assert tokens.session_id(token) is None


async def test_ending_a_session_revokes_its_token_at_once(fresh_redis: str) -> None:
    """The token still verifies as a JWT, but the session it names is gone, so it is refused."""
    client = aioredis.from_url(fresh_redis)
    try:
        store = SessionStore(client, SessionTokens({"k1": OLD}, "k1"))
        session = await store.create("op1", "p1", "EUR", "generic", "g1", 600)
        assert (await store.get(session.token)) == session
        await store.end(session.token)
        assert await store.get(session.token) is None
        assert await store.of_player("op1", "p1") == []
    finally:
        await client.aclose()


async def _gets(client: aioredis.Redis) -> int:
    """Return how many GET commands this Redis server has run."""
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


@contextlib.asynccontextmanager
async def _node(url: str, cache_s: float) -> AsyncIterator[SessionStore]:
    """Yield one node's session store, following ended sessions as a gateway does."""
    client = aioredis.from_url(url)
    store = SessionStore(client, SessionTokens({"k1": OLD}, "k1"), cache_s=cache_s)
    ready = asyncio.Event()
    follower = asyncio.create_task(store.follow_ended(ready))
    try:
        await asyncio.wait_for(ready.wait(), 5)
        yield store
    finally:
        store.stop_following()
        await asyncio.wait_for(follower, 5)
        await client.aclose()


async def test_a_node_reads_a_session_from_redis_once(fresh_redis: str) -> None:
    """Within cache_s a node answers a session from memory; with cache_s = 0 it asks Redis each time."""
    async with _node(fresh_redis, 3600) as cached, _node(fresh_redis, 0) as uncached:
        session = await cached.create("op1", "p1", "EUR", "generic", "g1", 600)
        before = await _gets(cached.redis)
        for _ in range(5):
            assert await cached.get(session.token) == session
        assert await _gets(cached.redis) - before == 1
        before = await _gets(cached.redis)
        for _ in range(5):
            assert await uncached.get(session.token) == session
        assert await _gets(cached.redis) - before == 5


async def test_a_session_ended_on_one_node_is_refused_on_every_node_at_once(fresh_redis: str) -> None:
    """Node B holds the session for an hour; node A ends it; B refuses it once the message lands."""
    async with _node(fresh_redis, 3600) as a, _node(fresh_redis, 3600) as b:
        session = await a.create("op1", "p1", "EUR", "generic", "g1", 600)
        assert await b.get(session.token) == session
        assert await a.get(session.token) == session
        await a.end(session.token)
        assert await a.get(session.token) is None  # the node that ended it: at once
        # The other: as soon as Redis delivers the message (far sooner than its hour of cache).
        deadline = time.monotonic() + 10
        while await b.get(session.token) is not None:
            assert time.monotonic() < deadline, "node B still honours an ended session"
            await asyncio.sleep(0.01)


async def test_without_its_subscription_a_node_caches_nothing(fresh_redis: str) -> None:
    """A store that does not follow ended sessions (a tool, a lost channel) reads Redis every time."""
    client = aioredis.from_url(fresh_redis)
    try:
        store = SessionStore(client, SessionTokens({"k1": OLD}, "k1"), cache_s=3600)
        session = await store.create("op1", "p1", "EUR", "generic", "g1", 600)
        assert await store.get(session.token) == session
        await client.delete(store._key(session.session_id))  # as a flush would
        assert await store.get(session.token) is None
    finally:
        await client.aclose()
