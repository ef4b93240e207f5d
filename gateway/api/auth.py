"""Operator API authentication: HMAC-signed requests or JWT client assertions; a key names one operator."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.typedefs import Handler
from redis.exceptions import RedisError

from gateway import keys
from gateway.api.problems import ApiError, Code
from gateway.settings import JwtKey, Settings
from wallet.signing import KEY_ID_HEADER, SignatureError, Verifier

OPERATOR = web.RequestKey("operator", str)
# A client assertion may live this long at most, so a leaked one is soon worthless.
MAX_ASSERTION_LIFETIME_S = 300
LEEWAY_S = 30
_REQUIRED_CLAIMS = ["exp", "iat", "aud", "iss"]


@dataclass(frozen=True, slots=True)
class _JwtVerifier:
    """One operator's assertion key, parsed once at start, and its one algorithm."""

    operator: str
    algorithm: str
    key: Any


@dataclass(frozen=True, slots=True)
class ApiAuth:
    """Every operator's API keys, indexed by key id (a key id names exactly one operator)."""

    hmac_owner: Mapping[str, str]
    verifier: Verifier
    jwt_keys: Mapping[str, _JwtVerifier]
    audience: str

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiAuth:
        """Index the configured operators' API keys; a key id used twice or a bad key fails at start."""
        hmac_owner: dict[str, str] = {}
        secrets: dict[str, bytes] = {}
        jwt_keys: dict[str, _JwtVerifier] = {}
        for name, op in settings.operators.items():
            for kid in (*op.api.hmac_keys, *op.api.jwt_keys):
                if kid in hmac_owner or kid in jwt_keys:
                    raise ValueError(f"api key id {kid!r} is configured twice")
                if kid in op.api.hmac_keys:
                    hmac_owner[kid] = name
                    secrets[kid] = op.api.hmac_keys[kid]
                else:
                    jwt_keys[kid] = _jwt_verifier(name, op.api.jwt_keys[kid])
        return cls(hmac_owner, Verifier(secrets), jwt_keys, settings.api_audience)

    async def operator(self, request: web.Request, redis: aioredis.Redis) -> str:
        """Return the operator a request is authenticated as, or raise ApiError 401."""
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            return await self._assertion(credentials.strip(), redis)
        if KEY_ID_HEADER in request.headers:
            body = await request.read()
            try:
                # The path and query exactly as sent: yarl's normalised form (%3A -> ':') would refuse
                # a client whose library percent-encodes what it signs.
                kid = self.verifier.verify(request.headers, request.method, request.raw_path, body)
            except SignatureError as exc:
                raise ApiError(401, Code.UNAUTHORIZED, str(exc)) from None
            return self.hmac_owner[kid]
        raise ApiError(401, Code.UNAUTHORIZED, "sign the request (X-Croupier-*) or send a Bearer assertion")

    async def _assertion(self, token: str, redis: aioredis.Redis) -> str:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise ApiError(401, Code.UNAUTHORIZED, f"malformed assertion: {exc}") from None
        found = self.jwt_keys.get(kid) if isinstance(kid, str) else None
        if found is None:
            raise ApiError(401, Code.UNAUTHORIZED, "unknown key id in the assertion")
        operator = found.operator
        try:
            # The algorithm comes from our configuration, never from the token's header.
            claims = jwt.decode(
                token,
                found.key,
                algorithms=[found.algorithm],
                audience=self.audience,
                issuer=operator,
                leeway=LEEWAY_S,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as exc:
            raise ApiError(401, Code.UNAUTHORIZED, f"assertion refused: {exc}") from None
        if int(claims["exp"]) - int(claims["iat"]) > MAX_ASSERTION_LIFETIME_S:
            raise ApiError(
                401, Code.UNAUTHORIZED, f"an assertion may live {MAX_ASSERTION_LIFETIME_S} s at most"
            )
        jti = claims.get("jti")
        if jti is not None:
            # An assertion with an id is single-use: a replay of it is refused.
            ttl_s = max(1, int(claims["exp"]) - int(claims["iat"]) + 2 * LEEWAY_S)
            await _once(redis, f"croupier:jti:{kid}:{jti}", ttl_s, "assertion")
        return operator


def _jwt_verifier(operator: str, key: JwtKey) -> _JwtVerifier:
    try:
        parsed = jwt.get_algorithm_by_name(key.algorithm).prepare_key(key.public_key)
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise ValueError(f"operator {operator}: JWT key is not a {key.algorithm} public key: {exc}") from None
    return _JwtVerifier(operator, key.algorithm, parsed)


async def _once(redis: aioredis.Redis, key: str, ttl_s: int, what: str) -> None:
    """Refuse a credential seen before; a credential is remembered for as long as it could be valid."""
    try:
        fresh = await redis.set(key, b"1", nx=True, ex=ttl_s)
    except RedisError:
        # Without the replay check a single-use credential cannot be accepted; the client retries.
        raise ApiError(503, Code.UNAVAILABLE, "the replay check is unavailable; retry") from None
    if not fresh:
        raise ApiError(401, Code.UNAUTHORIZED, f"{what} already used; sign a new one")


API_AUTH = web.AppKey("api_auth", ApiAuth)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Let a request through only with an operator's valid credentials, and record which operator."""
    auth = request.config_dict[API_AUTH]
    request[OPERATOR] = await auth.operator(request, request.config_dict[keys.REDIS])
    return await handler(request)


def operator_of(request: web.Request) -> str:
    """Return the operator the request is authenticated as."""
    return request[OPERATOR]
