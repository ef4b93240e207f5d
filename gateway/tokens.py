"""Session tokens: short JWTs signed by Croupier with rotating keys, pointing at a session in Redis."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
# Longer than any token we issue: a longer string is refused before it is parsed.
MAX_TOKEN_LENGTH = 512


@dataclass(frozen=True, slots=True)
class SessionTokens:
    """Signs with the active key and verifies with every key still configured, chosen by `kid`."""

    keys: Mapping[str, bytes]
    active_kid: str

    def __post_init__(self) -> None:
        if self.active_kid not in self.keys:
            raise ValueError("the active session key id must be one of the session keys")

    def issue(self, session_id: str, ttl_s: int, now_s: float | None = None) -> str:
        """Return a token for a session that expires in `ttl_s` seconds."""
        now = int(time.time() if now_s is None else now_s)
        claims = {"sid": session_id, "iat": now, "exp": now + ttl_s}
        return jwt.encode(claims, self.keys[self.active_kid], ALGORITHM, headers={"kid": self.active_kid})

    def session_id(self, token: str) -> str | None:
        """Return the session id of a genuine, unexpired token, or None for anything else."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
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
        return sid if isinstance(sid, str) else None
