"""Bad provider input through the generic adapter: a clear error in the protocol's shape, nothing written."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from helpers import *  # noqa: F403 -- the harness fixtures: harness, backend, gw
from helpers import PROVIDER_KEY_ID, PROVIDER_SECRET, Gateway, Harness, provider_signer

from wallet.signing import KEY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, Signer

OPENING = 100_000  # 1000.00 EUR
SIGNER = provider_signer()


@pytest.fixture
async def gw(harness: Harness) -> Gateway:
    """Return a ledger gateway where p1 holds 1000.00 EUR and has already bet once."""
    gateway = await harness.gateway("ledger")
    await gateway.open_player("p1", OPENING)
    token = await gateway.session()
    assert (await gateway.debit("d0", "1.00", token=token)).ok
    return gateway


def _body(token: str, **change: Any) -> dict[str, Any]:
    body = {
        "operator": "op1",
        "player_id": "p1",
        "currency": "EUR",
        "session_token": token,
        "transaction_id": "d1",
        "amount": "2.50",
        "round_id": "r1",
        "game_id": "g1",
    }
    body.update(change)
    return body


@dataclass(frozen=True)
class Bad:
    """A bad request: how to build its body and headers, and the error it must get."""

    build: Callable[[str], bytes]
    http_status: int
    code: str
    message: str  # a regular expression the message must match
    signer: Signer | None = SIGNER
    now_s: Callable[[], float] | None = None


def _json(**change: Any) -> Callable[[str], bytes]:
    return lambda token: orjson.dumps(_body(token, **change))


def _text(template: str) -> Callable[[str], bytes]:
    return lambda token: template.replace("TOKEN", token).encode()


_INVALID = (400, "INVALID_REQUEST")
_UNSIGNED = (401, "INVALID_SIGNATURE")
CASES: dict[str, Bad] = {
    "malformed-json": Bad(_text('{"operator": "op1", "amount": '), *_INVALID, "malformed JSON"),
    "json-array": Bad(_text('[{"operator": "op1"}]'), *_INVALID, "JSON object"),
    "amount-bool": Bad(_json(amount=True), *_INVALID, "amount must be"),
    "amount-object": Bad(_json(amount={"value": "2.50"}), *_INVALID, "amount must be"),
    "player-id-number": Bad(_json(player_id=5), *_INVALID, "player_id must be a string"),
    "amount-nan": Bad(
        _text(
            '{"operator": "op1", "player_id": "p1", "currency": "EUR", "session_token": "TOKEN",'
            ' "transaction_id": "d1", "amount": NaN, "round_id": "r1"}'
        ),
        *_INVALID,
        "malformed JSON",
    ),
    "amount-negative": Bad(_json(amount="-1.00"), *_INVALID, "negative"),
    "amount-over-precise": Bad(_json(amount="1.001"), *_INVALID, "too many decimal places"),
    "amount-huge": Bad(_json(amount="1e30"), *_INVALID, "too large"),
    "amount-words": Bad(_json(amount="ten"), *_INVALID, "not a number"),
    "transaction-id-nul": Bad(_json(transaction_id="d\x001"), *_INVALID, "must not contain control"),
    "round-id-nul": Bad(_json(round_id="r\x00"), *_INVALID, "round_id must not contain control characters"),
    "game-id-newline": Bad(_json(game_id="g\n1"), *_INVALID, "game_id must not contain control characters"),
    "currency-xxx": Bad(_json(currency="XXX"), *_INVALID, "unknown currency"),
    "currency-abc": Bad(_json(currency="ABC"), *_INVALID, "unknown currency"),
    "oversized": Bad(_json(padding="x" * (65 * 1024)), 413, "INVALID_REQUEST", "larger than 65536"),
    "bad-signature": Bad(_json(), *_UNSIGNED, "does not match", signer=Signer(PROVIDER_KEY_ID, b"wrong")),
    "unknown-key-id": Bad(_json(), *_UNSIGNED, "unknown key id", signer=Signer("k9", PROVIDER_SECRET)),
    "stale-timestamp": Bad(
        _json(), *_UNSIGNED, "outside the accepted window", now_s=lambda: time.time() - 3600
    ),
    "unsigned": Bad(_json(), *_UNSIGNED, "missing signature", signer=None),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_bad_input_gets_a_clear_error_and_writes_nothing(gw: Gateway, case: Bad):
    """Malformed, mistyped, out-of-range, oversized or badly signed input is refused; nothing is written."""
    token = await gw.session()
    before = (await gw.counts(), await gw.balance())
    rounds = await gw.pool.fetchval("SELECT count(*) FROM croupier.rounds")
    status, answer = await gw.post_raw(
        "debit", case.build(token), signer=case.signer, now_s=case.now_s() if case.now_s else None
    )
    assert status == case.http_status, answer
    assert (answer["status"], answer["code"], answer["retryable"]) == ("ERROR", case.code, False)
    assert re.search(case.message, answer["message"]), answer["message"]
    assert (await gw.counts(), await gw.balance()) == before == ((1, 1), OPENING - 100)
    assert await gw.pool.fetchval("SELECT count(*) FROM croupier.rounds") == rounds


async def test_tampered_body_is_refused(gw: Gateway):
    """A body changed after it was signed fails the signature check and writes nothing."""
    token = await gw.session()
    signed = orjson.dumps(_body(token))
    headers = provider_signer().headers("POST", "/providers/generic/debit", signed)
    tampered = orjson.dumps(_body(token, amount="900.00"))
    status, answer = await gw.post_raw("debit", tampered, headers=headers)
    assert (status, answer["code"]) == (401, "INVALID_SIGNATURE")
    assert await gw.counts() == (1, 1)


async def test_signature_headers_must_all_be_present(gw: Gateway):
    """A request with a key id and timestamp but no signature is refused as unsigned."""
    token = await gw.session()
    body = orjson.dumps(_body(token))
    headers = provider_signer().headers("POST", "/providers/generic/debit", body)
    del headers[SIGNATURE_HEADER]
    assert {KEY_ID_HEADER, TIMESTAMP_HEADER} <= set(headers)
    status, answer = await gw.post_raw("debit", body, headers=headers)
    assert (status, answer["code"]) == (401, "INVALID_SIGNATURE")
    assert await gw.counts() == (1, 1)


@pytest.mark.parametrize(
    "amount", ["1e2", "1E+2", 1e2, "100.000"], ids=["text", "text-upper", "number", "zeros"]
)
async def test_exponent_and_trailing_zero_amounts_are_exact(gw: Gateway, amount: object):
    """wallet/money.py reads JSON-number shapes exactly: "1e2" EUR is a bet of exactly 100.00."""
    token = await gw.session()
    answer = await gw.debit("d1", amount, token=token)
    assert answer.ok, answer
    assert answer.body["balance"] == "899.00"
    assert (await gw.operation("debit", "d1"))["amount_minor"] == 10_000
    assert await gw.entries() == [-100, -10_000]
    assert await gw.assert_books() == OPENING - 10_100


# aiohttp's StreamReader.read(n) returns only what has arrived; read_body must loop.
async def test_body_arriving_in_two_segments_is_read_whole(gw: Gateway):
    """A signed request whose body arrives in two TCP segments is read whole and applied."""
    token = await gw.session()
    body = orjson.dumps(_body(token))
    path = "/providers/generic/debit"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in provider_signer().headers("POST", path, body).items())
        + "\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.client.port)
    try:
        writer.write(head.encode() + body[:40])
        await writer.drain()
        reply = asyncio.create_task(reader.read())
        # A server that answers before the rest of the body is sent cannot have read it whole.
        done, _ = await asyncio.wait({reply}, timeout=0.5)
        if not done:
            writer.write(body[40:])
            await writer.drain()
        raw = await reply
    finally:
        writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 200 OK", raw
    assert orjson.loads(rest.partition(b"\r\n\r\n")[2])["status"] == "OK"
    assert await gw.counts() == (2, 2)
