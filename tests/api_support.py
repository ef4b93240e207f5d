"""The Operator API under test: a gateway with two operators, and clients that sign as one of them.

Every request an `ApiClient` sends and every answer it gets is checked against the OpenAPI
document (docs/openapi/operator-api-v1.yaml) with openapi-core, so a handler that drifts from
the spec fails the test that exercised it.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from openapi_core import Config, OpenAPI
from openapi_core.deserializing.media_types.util import json_loads
from openapi_core.testing import MockRequest, MockResponse
from yarl import URL

from gateway import keys
from gateway.app import create_app
from gateway.settings import ApiCredentials, JwtKey, OperatorSettings, Settings
from providers import registry
from providers.base import ProviderConfig
from providers.generic.simulator import Answer, GenericSimulator
from wallet.backends.ledger import open_account
from wallet.policy import OperatorPolicy
from wallet.signing import Signer

__all__ = ["api"]

SPEC_PATH = Path(__file__).resolve().parents[1] / "docs" / "openapi" / "operator-api-v1.yaml"
OPERATORS = ("op1", "op2")
AUDIENCE = "croupier"
SESSION_KEY_ID = "s-api-1"
SESSION_KEY = b"session signing key for the operator api tests"
GENERIC_KEY_ID = "gen-1"
GENERIC_SECRET = b"generic provider secret for api tests"


@cache
def spec() -> OpenAPI:
    """Return the Operator API's OpenAPI document, parsed once."""
    # openapi-core decodes only a few JSON media types by name; problem details are JSON too.
    problem_json = Config(extra_media_type_deserializers={"application/problem+json": json_loads})
    return OpenAPI.from_file_path(str(SPEC_PATH), config=problem_json)


@cache
def _private_key(operator: str) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _public_pem(operator: str) -> str:
    public = _private_key(operator).public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode()


def hmac_key_id(operator: str) -> str:
    """Return the HMAC key id of an operator's API credentials."""
    return f"{operator}-api-1"


def hmac_secret(operator: str) -> bytes:
    """Return the HMAC secret of an operator's API credentials."""
    return f"api secret of {operator}".encode()


def jwt_key_id(operator: str) -> str:
    """Return the key id of an operator's JWT signing key."""
    return f"{operator}-jwt-1"


def assertion(operator: str, *, lifetime_s: int = 60, **overrides: Any) -> str:
    """Return a client assertion signed with the operator's private key; overrides change claims."""
    now = int(time.time())
    claims: dict[str, Any] = {"iss": operator, "aud": AUDIENCE, "iat": now, "exp": now + lifetime_s}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, _private_key(operator), "ES256", headers={"kid": jwt_key_id(operator)})


@dataclass(frozen=True, slots=True)
class Reply:
    """An Operator API answer: status, headers and decoded JSON body (None for 204)."""

    status: int
    body: Any
    headers: Mapping[str, str]


@dataclass(slots=True)
class ApiClient:
    """Calls the Operator API as one operator, checking both sides of every call against the spec."""

    client: TestClient
    operator: str
    auth: str = "hmac"

    def _auth_headers(self, method: str, path_qs: str, body: bytes) -> dict[str, str]:
        if self.auth == "jwt":
            return {"Authorization": f"Bearer {assertion(self.operator)}"}
        if self.auth == "none":
            return {}
        return Signer(hmac_key_id(self.operator), hmac_secret(self.operator)).headers(method, path_qs, body)

    async def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        check_request: bool = True,
    ) -> Reply:
        """Send a request and return the reply; `check_request=False` for deliberately bad requests."""
        query = urlencode({k: _query_value(v) for k, v in (params or {}).items() if v is not None})
        path_qs = f"{path}?{query}" if query else path
        raw = body if body is not None else (b"" if json is None else orjson.dumps(json))
        sent = {"Content-Type": "application/json"} if raw else {}
        # Sign the query as aiohttp sends it and the server reads it (yarl leaves ':' unescaped).
        sent |= self._auth_headers(method, URL(path_qs).raw_path_qs, raw)
        sent |= dict(headers or {})
        request = MockRequest(
            "http://localhost",
            method.lower(),
            path,
            args=dict(_parse_query(query)),
            headers=sent,
            data=raw or None,
        )
        if check_request:
            spec().validate_request(request)
        async with self.client.request(method, path_qs, data=raw, headers=sent) as resp:
            data = await resp.read()
            reply_headers = dict(resp.headers)
            content_type = resp.content_type
            status = resp.status
        if status != 204:
            spec().validate_response(request, MockResponse(data, status, reply_headers, content_type))
        decoded = orjson.loads(data) if data else None
        return Reply(status, decoded, reply_headers)

    async def get(self, path: str, **kwargs: Any) -> Reply:
        """GET a path."""
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, json: Any = None, **kwargs: Any) -> Reply:
        """POST a JSON body."""
        return await self.call("POST", path, json, **kwargs)

    async def put(self, path: str, json: Any = None, **kwargs: Any) -> Reply:
        """PUT a JSON body."""
        return await self.call("PUT", path, json, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Reply:
        """DELETE a path."""
        return await self.call("DELETE", path, **kwargs)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse_query(query: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl  # noqa: PLC0415

    return parse_qsl(query, keep_blank_values=True)


def api_settings(database_url: str, redis_url: str, **operator_options: Any) -> Settings:
    """Return settings with operators op1 and op2 (ledger backend) and every registered provider."""
    operators = {
        name: OperatorSettings(
            policy=OperatorPolicy(name=name, max_bet_minor={"EUR": 50_000}),
            api=ApiCredentials(
                hmac_keys={hmac_key_id(name): hmac_secret(name)},
                jwt_keys={jwt_key_id(name): JwtKey("ES256", _public_pem(name))},
            ),
            **operator_options,
        )
        for name in OPERATORS
    }
    providers: dict[str, ProviderConfig] = {}
    for name in registry.names():
        sample = registry.load(name).sample_config()
        providers[name] = ProviderConfig(name, sample.secrets, sample.options)
    providers["generic"] = ProviderConfig(
        "generic",
        {GENERIC_KEY_ID: GENERIC_SECRET},
        {"games": [{"id": "g1", "name": "Generic One"}, {"id": "g2", "name": "Generic Two", "demo": False}]},
    )
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        currencies={"BTC": 8},
        operators=operators,
        providers=providers,
        outbox_interval_s=3600.0,
        session_keys={SESSION_KEY_ID: SESSION_KEY},
        session_active_key=SESSION_KEY_ID,
        api_audience=AUDIENCE,
    )


@dataclass(slots=True)
class ApiEnv:
    """A running gateway for Operator API tests, with clients per operator and a generic provider."""

    client: TestClient
    generic: GenericSimulator
    clients: dict[tuple[str, str], ApiClient] = field(default_factory=dict)

    @property
    def app(self) -> Any:
        """Return the gateway's application."""
        return self.client.server.app

    def as_(self, operator: str, auth: str = "hmac") -> ApiClient:
        """Return a client that authenticates as an operator ('hmac', 'jwt' or 'none')."""
        return self.clients.setdefault((operator, auth), ApiClient(self.client, operator, auth))

    async def open_player(
        self, operator: str, player_id: str, balance_minor: int = 100_000, currency: str = "EUR"
    ) -> None:
        """Give a player an account with money on the ledger backend."""
        async with self.app[keys.PG_POOL].acquire() as conn:
            await open_account(conn, operator, player_id, currency, balance_minor)

    async def generic_call(self, operation: str, body: dict[str, Any]) -> Answer:
        """Send one generic-protocol call as the provider would."""
        return await self.generic.call(operation, body)

    @staticmethod
    def unique(prefix: str = "x") -> str:
        """Return a fresh id."""
        return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def serve_api(settings: Settings, stack: contextlib.AsyncExitStack) -> ApiEnv:
    """Start a gateway on a real port until the stack closes, with a generic provider beside it."""
    client = TestClient(TestServer(create_app(settings), host="127.0.0.1"))
    await client.start_server()
    stack.push_async_callback(client.close)
    generic = GenericSimulator(
        str(client.make_url("/")),
        client.session,
        ProviderConfig("generic", {GENERIC_KEY_ID: GENERIC_SECRET}),
    )
    return ApiEnv(client, generic)


@pytest.fixture
async def api(fresh_db: str, fresh_redis: str) -> AsyncIterator[ApiEnv]:
    """Yield a running gateway with the Operator API, on the test's own database."""
    async with contextlib.AsyncExitStack() as stack:
        yield await serve_api(api_settings(fresh_db, fresh_redis), stack)
