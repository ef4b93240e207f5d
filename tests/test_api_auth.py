"""Operator API authentication: HMAC-signed requests, JWT client assertions, and operator isolation.

`GET /v1/games` is the probe: it needs credentials and answers per operator. Every refusal is a
401 problem with the code `unauthorized`; the reply is checked against the OpenAPI document too.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import make_mocked_request
from api_support import *  # noqa: F403
from api_support import (
    AUDIENCE,
    ApiEnv,
    Reply,
    api_settings,
    assertion,
    hmac_key_id,
    hmac_secret,
    jwt_key_id,
)
from cryptography.hazmat.primitives.asymmetric import ec

from gateway import keys
from gateway.api.auth import MAX_ASSERTION_LIFETIME_S, ApiAuth
from gateway.api.problems import PROBLEM_TYPE, ApiError, Code
from wallet.signing import KEY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, Signer

PROBE = "/v1/games"
GAME = "/v1/games/generic/g1"
CODES = {code.value for code in Code}


def _is_problem(reply: Reply, status: int, code: str) -> None:
    assert reply.status == status, reply.body
    assert reply.headers["Content-Type"].split(";")[0] == PROBLEM_TYPE
    assert reply.body["code"] == code
    assert reply.body["code"] in CODES
    assert reply.body["status"] == status


async def _refused(
    api: ApiEnv,
    headers: dict[str, str],
    *,
    method: str = "GET",
    path: str = PROBE,
    body: bytes = b"",
    because: str = "",
) -> Reply:
    """Send a request with exactly these credentials and check it is refused as unauthorized."""
    sent = {"Content-Type": "application/json"} if body else {}
    reply = await api.as_("op1", "none").call(
        method, path, body=body, headers=sent | headers, check_request=False
    )
    _is_problem(reply, 401, "unauthorized")
    assert because.lower() in reply.body["detail"].lower(), reply.body["detail"]
    return reply


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forged(header: dict[str, Any], claims: dict[str, Any], sign: Any) -> str:
    """Build a JWT by hand, as an attacker would, signing its input with `sign` (bytes -> bytes)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


def _claims(operator: str = "op1", lifetime_s: int = 60) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": operator, "aud": AUDIENCE, "iat": now, "exp": now + lifetime_s}


# --- HMAC-signed requests ---------------------------------------------------------------------------


async def test_a_signed_request_is_accepted_as_its_keys_operator(api: ApiEnv) -> None:
    """A request signed with an operator's key gets that operator's answer."""
    reply = await api.as_("op1").get(PROBE)
    assert reply.status == 200
    assert reply.body["count"] == len(reply.body["games"]) > 0


async def test_a_signed_query_string_is_accepted(api: ApiEnv) -> None:
    """The query string is part of what is signed, verified exactly as it was sent."""
    reply = await api.as_("op1").get(PROBE, params={"provider": "generic", "include_disabled": True})
    assert reply.status == 200
    assert {game["game_id"] for game in reply.body["games"]} == {"g1", "g2"}
    # Percent-encoding is signed as sent, not as a server or client library would tidy it.
    for target in (
        f"{PROBE}?provider=generic&jurisdiction=a+b%2F%C3%A9%2B",
        f"{PROBE}?provider=generic&jurisdiction=%7e",
        "/v1/games/generic/g%31",
    ):
        signed = Signer(hmac_key_id("op1"), hmac_secret("op1")).headers("GET", target, b"")
        status, _ = await _sent_as_is(api, target, signed)
        assert status == 200, target
        tidied = target.replace("%2F", "/").replace("%7e", "~").replace("%31", "1")
        status, _ = await _sent_as_is(api, tidied, signed)
        assert status == 401, tidied


async def _sent_as_is(api: ApiEnv, target: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """Send a GET whose request target is exactly `target` (HTTP clients re-encode it); return the answer."""
    server = api.client.server
    assert server.port is not None
    reader, writer = await asyncio.open_connection(server.host, server.port)
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    writer.write(f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{lines}\r\n".encode())
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return int(answer.split(b" ", 2)[1]), answer


async def test_a_wrong_signature_is_refused(api: ApiEnv) -> None:
    """A signature under another secret, even the other operator's, is refused."""
    for secret in (b"not the secret", hmac_secret("op2")):
        headers = Signer(hmac_key_id("op1"), secret).headers("GET", PROBE, b"")
        await _refused(api, headers, because="signature does not match")
    headers = Signer(hmac_key_id("op1"), hmac_secret("op1")).headers("GET", PROBE, b"")
    await _refused(api, headers | {SIGNATURE_HEADER: headers[SIGNATURE_HEADER].upper()}, because="match")


async def test_an_unknown_key_id_is_refused(api: ApiEnv) -> None:
    """A key id no operator has is refused, whatever it signs with."""
    headers = Signer("nobody-api-1", hmac_secret("op1")).headers("GET", PROBE, b"")
    await _refused(api, headers, because="unknown key id")


async def test_a_stale_or_future_timestamp_is_refused(api: ApiEnv) -> None:
    """A correct signature over a timestamp more than 300 s away from now is refused."""
    signer = Signer(hmac_key_id("op1"), hmac_secret("op1"))
    for skew_s in (-301 - 60, 301 + 60):
        headers = signer.headers("GET", PROBE, b"", now_s=time.time() + skew_s)
        await _refused(api, headers, because="outside the accepted window")
    headers = signer.headers("GET", PROBE, b"")
    await _refused(api, headers | {TIMESTAMP_HEADER: "soon"}, because="not an integer")


async def test_a_body_altered_after_signing_is_refused_and_changes_nothing(api: ApiEnv) -> None:
    """A body that is not the one signed is refused before the endpoint sees it."""
    signed = orjson.dumps({"enabled": True})
    sent = orjson.dumps({"enabled": False})
    headers = Signer(hmac_key_id("op1"), hmac_secret("op1")).headers("PUT", GAME, signed)
    await _refused(api, headers, method="PUT", path=GAME, body=sent, because="signature does not match")
    assert (await api.as_("op1").get(GAME)).body["enabled"] is True


async def test_a_signature_for_another_request_is_refused(api: ApiEnv) -> None:
    """Method, path and query are signed: a signature cannot be moved to another request."""
    signer = Signer(hmac_key_id("op1"), hmac_secret("op1"))
    await _refused(api, signer.headers("GET", f"{PROBE}?provider=generic", b""), because="match")
    await _refused(api, signer.headers("GET", GAME, b""), because="match")
    await _refused(api, signer.headers("PUT", GAME, b""), path=GAME, because="match")


async def test_missing_credentials_are_refused(api: ApiEnv) -> None:
    """No credentials, or a signature without one of its three headers, is refused."""
    await _refused(api, {}, because="sign the request")
    headers = Signer(hmac_key_id("op1"), hmac_secret("op1")).headers("GET", PROBE, b"")
    for missing in (TIMESTAMP_HEADER, SIGNATURE_HEADER):
        partial = {name: value for name, value in headers.items() if name != missing}
        await _refused(api, partial, because="missing signature headers")
    await _refused(api, {**headers, KEY_ID_HEADER: ""}, because="missing signature headers")
    without_key = {name: value for name, value in headers.items() if name != KEY_ID_HEADER}
    await _refused(api, without_key, because="sign the request")


# --- JWT client assertions --------------------------------------------------------------------------


async def test_a_client_assertion_is_accepted_as_its_keys_operator(api: ApiEnv) -> None:
    """A fresh assertion signed with an operator's key authenticates as that operator."""
    reply = await api.as_("op1", "jwt").get(PROBE)
    assert reply.status == 200
    assert reply.body["count"] > 0
    reply = await api.as_("op1", "none").get(PROBE, headers=_bearer(assertion("op1", lifetime_s=300)))
    assert reply.status == 200


async def test_an_expired_assertion_is_refused(api: ApiEnv) -> None:
    """An assertion past its exp (beyond the 30 s leeway) is refused."""
    now = int(time.time())
    await _refused(api, _bearer(assertion("op1", iat=now - 160, exp=now - 100)), because="expired")


async def test_an_assertion_missing_a_required_claim_is_refused(api: ApiEnv) -> None:
    """exp, iat, aud and iss are each required."""
    for claim in ("exp", "iat", "aud", "iss"):
        await _refused(api, _bearer(assertion("op1", **{claim: None})), because=f'"{claim}"')


async def test_an_assertion_for_another_audience_is_refused(api: ApiEnv) -> None:
    """An assertion made for another service is refused."""
    await _refused(api, _bearer(assertion("op1", aud="someone-else")), because="audience")


async def test_an_assertion_naming_another_operator_is_refused(api: ApiEnv) -> None:
    """op1's key cannot speak for op2: the issuer must be the key's own operator."""
    await _refused(api, _bearer(assertion("op1", iss="op2")), because="issuer")


async def test_an_assertion_with_an_unknown_or_wrong_key_is_refused(api: ApiEnv) -> None:
    """A key id no operator has, or a stranger's key under op1's key id, is refused."""
    stranger = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(_claims(), stranger, "ES256", headers={"kid": "stranger-jwt-1"})
    await _refused(api, _bearer(token), because="unknown key id")
    token = jwt.encode(_claims(), stranger, "ES256")
    await _refused(api, _bearer(token), because="unknown key id")
    token = jwt.encode(_claims(), stranger, "ES256", headers={"kid": jwt_key_id("op1")})
    await _refused(api, _bearer(token), because="signature verification failed")


async def test_an_assertion_living_longer_than_allowed_is_refused(api: ApiEnv) -> None:
    """An assertion whose exp is more than 300 s after its iat is refused, though otherwise valid."""
    token = assertion("op1", lifetime_s=MAX_ASSERTION_LIFETIME_S + 1)
    await _refused(api, _bearer(token), because=f"{MAX_ASSERTION_LIFETIME_S} s at most")


async def test_an_assertion_issued_in_the_future_is_refused(api: ApiEnv) -> None:
    """An iat ahead of now (beyond the leeway) is refused: it would stretch the assertion's life."""
    now = int(time.time())
    await _refused(api, _bearer(assertion("op1", iat=now + 200, exp=now + 260)), because="not yet valid")


async def test_algorithm_confusion_and_unsigned_assertions_are_refused(api: ApiEnv) -> None:
    """HS256 keyed with op1's public key, and alg 'none', are refused: the algorithm is configured."""
    public_pem = api.app[keys.SETTINGS].operators["op1"].api.jwt_keys[jwt_key_id("op1")].public_key
    header = {"alg": "HS256", "typ": "JWT", "kid": jwt_key_id("op1")}
    confused = _forged(
        header, _claims(), lambda data: hmac.new(public_pem.encode(), data, hashlib.sha256).digest()
    )
    await _refused(api, _bearer(confused), because="alg value is not allowed")
    unsigned = _forged(header | {"alg": "none"}, _claims(), lambda _: b"")
    await _refused(api, _bearer(unsigned), because="alg value is not allowed")
    await _refused(api, _bearer("not-a-jwt"), because="malformed")


async def test_an_assertion_with_a_jti_is_single_use(api: ApiEnv) -> None:
    """An assertion carrying a jti is accepted once; a replay of it is refused."""
    token = assertion("op1", jti="once-1")
    client = api.as_("op1", "none")
    assert (await client.get(PROBE, headers=_bearer(token))).status == 200
    await _refused(api, _bearer(token), because="already used")
    # Another id is another assertion, and ids are per key: op2 may use the same one.
    assert (await client.get(PROBE, headers=_bearer(assertion("op1", jti="once-2")))).status == 200
    reply = await api.as_("op2", "none").get(PROBE, headers=_bearer(assertion("op2", jti="once-1")))
    assert reply.status == 200
    # Without a jti an assertion may be reused within its short life.
    reusable = assertion("op1")
    for _ in range(2):
        assert (await client.get(PROBE, headers=_bearer(reusable))).status == 200


async def test_a_single_use_assertion_waits_for_redis_rather_than_skip_the_replay_check() -> None:
    """With Redis down, an assertion with a jti is a 503 unavailable (retry), never let through."""
    auth = ApiAuth.from_settings(api_settings("postgresql://unused/db", "redis://unused"))
    dead = aioredis.from_url("redis://127.0.0.1:1", socket_connect_timeout=1)
    try:
        once = make_mocked_request("GET", PROBE, headers=_bearer(assertion("op1", jti="during-outage")))
        with pytest.raises(ApiError) as refused:
            await auth.operator(once, dead)
        assert (refused.value.status, refused.value.code) == (503, Code.UNAVAILABLE)
        # An assertion without a jti needs no replay check, so it still authenticates.
        assert (
            await auth.operator(make_mocked_request("GET", PROBE, headers=_bearer(assertion("op1"))), dead)
            == "op1"
        )
    finally:
        await dead.aclose()


# --- isolation, body size, answers ------------------------------------------------------------------


async def test_one_operators_credentials_never_change_anothers_catalogue(api: ApiEnv) -> None:
    """op1 disabling a game changes op1's catalogue only; op2's, by either scheme, is as before."""
    before = (await api.as_("op2").get(PROBE)).body
    assert "g1" in {game["game_id"] for game in before["games"]}
    reply = await api.as_("op1").put(GAME, {"enabled": False})
    assert reply.status == 200
    assert reply.body["enabled"] is False
    assert "g1" not in {game["game_id"] for game in (await api.as_("op1").get(PROBE)).body["games"]}
    assert (await api.as_("op2").get(PROBE)).body == before
    assert (await api.as_("op2", "jwt").get(PROBE)).body == before
    assert (await api.as_("op2").get(GAME)).body["enabled"] is True
    # The same request signed by op2's key acts on op2's settings, and leaves op1's alone.
    assert (await api.as_("op2").put(GAME, {"enabled": True})).body["enabled"] is True
    assert (await api.as_("op1").get(GAME)).body["enabled"] is False


async def test_a_body_over_the_limit_is_a_413_problem(api: ApiEnv) -> None:
    """A 2 MiB body to the Operator API is refused as payload_too_large, by either scheme."""
    big = b'{"enabled": true, "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    for auth in ("hmac", "jwt"):
        client = api.as_("op1", auth)
        headers = {"Content-Type": "application/json"} | client._auth_headers("PUT", GAME, big)
        # Sent past the spec check: the document declares no 413 for this operation.
        _is_problem(await _raw(api, "PUT", GAME, headers, big), 413, "payload_too_large")
    assert (await api.as_("op1").get(GAME)).body["enabled"] is True


async def test_unauthenticated_answers_are_problems_even_where_nothing_is_routed(api: ApiEnv) -> None:
    """Without credentials, an unrouted /v1 path is a 401 problem, never an HTML page or a hint."""
    path = "/v1/nothing-here"
    _is_problem(await _raw(api, "GET", path, {}), 401, "unauthorized")
    signed = Signer(hmac_key_id("op1"), hmac_secret("op1")).headers("GET", path, b"")
    _is_problem(await _raw(api, "GET", path, signed), 404, "not_found")


async def _raw(api: ApiEnv, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> Reply:
    """Send a request the OpenAPI document does not describe, and decode the answer."""
    async with api.client.request(method, path, data=body, headers=headers) as resp:
        return Reply(resp.status, orjson.loads(await resp.read()), dict(resp.headers))
