"""Operator API authentication: HMAC-signed requests or JWT client assertions; a key names one operator."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import jwt
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.typedefs import Handler

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
class ApiAuth:
    """Every operator's API keys, indexed by key id (a key id names exactly one operator)."""

    hmac_owner: Mapping[str, str]
    verifier: Verifier
    jwt_keys: Mapping[str, tuple[str, JwtKey]]
    audience: str

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiAuth:
        """Index the configured operators' API keys."""
        hmac_owner, secrets, jwt_keys = {}, {}, {}
        for name, op in settings.operators.items():
            for kid, secret in op.api.hmac_keys.items():
                hmac_owner[kid] = name
                secrets[kid] = secret
            for kid, key in op.api.jwt_keys.items():
                jwt_keys[kid] = (name, key)
        return cls(hmac_owner, Verifier(secrets), jwt_keys, settings.api_audience)

    async def operator(self, request: web.Request, redis: aioredis.Redis) -> str:
        """Return the operator a request is authenticated as, or raise ApiError 401."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return await self._assertion(header.removeprefix("Bearer ").strip(), redis)
        if KEY_ID_HEADER in request.headers:
            body = await request.read()
            try:
                kid = self.verifier.verify(request.headers, request.method, request.path_qs, body)
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
        operator, key = found
        try:
            # The algorithm comes from our configuration, never from the token's header.
            claims = jwt.decode(
                token,
                key.public_key,
                algorithms=[key.algorithm],
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
            if not await redis.set(f"croupier:jti:{kid}:{jti}", b"1", nx=True, ex=ttl_s):
                raise ApiError(401, Code.UNAUTHORIZED, "assertion already used")
        return operator


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
