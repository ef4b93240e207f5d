"""Session tokens: JWTs signed with the active key, verified by `kid`, so keys rotate without a cut."""

from __future__ import annotations

import base64
import time

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
