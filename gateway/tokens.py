"""Session tokens: short JWTs signed by Croupier with rotating keys, pointing at a session in Redis."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping

import jwt

ALGORITHM = "HS256"
# Longer than any token we issue: a longer string is refused before it is parsed.
MAX_TOKEN_LENGTH = 512
# Verified tokens remembered per node: a session's every bet carries the same token, and verifying
# it again costs about 0.2 ms of CPU in pyjwt. Revocation is unaffected: it lives in Redis.
VERIFIED_CACHE_SIZE = 65_536


class SessionTokens:
    """Signs with the active key and verifies with every key still configured, chosen by `kid`."""

    def __init__(self, keys: Mapping[str, bytes], active_kid: str) -> None:
        if active_kid not in keys:
            raise ValueError("the active session key id must be one of the session keys")
        self.keys = dict(keys)
        self.active_kid = active_kid
        self._verified: OrderedDict[str, tuple[str, int]] = OrderedDict()

    def issue(self, session_id: str, ttl_s: int, now_s: float | None = None) -> str:
        """Return a token for a session that expires in `ttl_s` seconds."""
        now = int(time.time() if now_s is None else now_s)
        claims = {"sid": session_id, "iat": now, "exp": now + ttl_s}
        return jwt.encode(claims, self.keys[self.active_kid], ALGORITHM, headers={"kid": self.active_kid})

    def session_id(self, token: str) -> str | None:
        """Return the session id of a genuine, unexpired token, or None for anything else."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        known = self._verified.get(token)
        if known is None:
            known = self._verify(token)
            if known is None:
                return None
            self._verified[token] = known
            if len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
        session_id, expires_s = known
        if expires_s <= time.time():
            self._verified.pop(token, None)
            return None
        self._verified.move_to_end(token)
        return session_id

    def _verify(self, token: str) -> tuple[str, int] | None:
        """Return a token's session id and expiry if its signature and claims are good."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self.keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                return None
            # The algorithm is fixed: a token naming another (or 'none') fails verification.
            claims = jwt.decode(
                token, key, algorithms=[ALGORITHM], options={"require": ["sid", "exp", "iat"]}
            )
        except jwt.PyJWTError:
            return None
        sid = claims.get("sid")
        return (sid, int(claims["exp"])) if isinstance(sid, str) else None
