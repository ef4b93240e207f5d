"""The reference operator wallet, served for real on an empty PostgreSQL database per test."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
import yaml
from openapi_spec_validator import validate

from wallet.pam.server import PAM_POOL, create_pam_app
from wallet.pam.settings import PamSettings
from wallet.signing import Signer

SECRETS = {"2024-old": b"old secret", "2025-new": b"new secret"}
SIGNER = Signer("2025-new", b"new secret")
MAX_BODY_BYTES = 4096
SPEC = Path(__file__).resolve().parents[1] / "docs" / "openapi" / "operator-wallet-v1.yaml"


@pytest.fixture
async def pam(fresh_db, aiohttp_client):
    """Return a client of a wallet server running on its own empty database."""
    # fresh_db comes first so it is torn down last, after the server closed its pool.
    settings = PamSettings(fresh_db, SECRETS, max_body_bytes=MAX_BODY_BYTES)
    return await aiohttp_client(create_pam_app(settings))


async def send(
    client,
    method: str,
    path: str,
    payload: object = None,
    *,
    raw: bytes | None = None,
    signer: Signer = SIGNER,
    now_s: float | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Send a signed request and return the HTTP status and the decoded answer."""
    body = raw if raw is not None else b"" if payload is None else orjson.dumps(payload)
    # Sign exactly what goes on the wire: the client's percent-encoded path and query.
    path_qs = client.make_url(path).raw_path_qs
    signed = signer.headers(method, path_qs, body, now_s) | {"Content-Type": "application/json"}
    async with client.request(method, path, data=body, headers=signed | (headers or {})) as resp:
        return resp.status, orjson.loads(await resp.read())


async def post(client, path: str, payload: object) -> dict[str, Any]:
    """Send a signed POST that must answer 200 and return the answer."""
    status, answer = await send(client, "POST", path, payload)
    assert status == 200, answer
    return answer


async def add_player(client, player_id="p1", balance_minor=10_000, currency="EUR", **extra):
    return await post(
        client,
        "/admin/players",
        {"player_id": player_id, "currency": currency, "balance_minor": balance_minor} | extra,
    )


def money(transaction_id: str, amount_minor: int = 100, **fields: Any) -> dict[str, Any]:
    """Return a debit request body; extra fields extend or override it."""
    return {
        "request_id": f"req-{transaction_id}",
        "transaction_id": transaction_id,
        "player_id": "p1",
        "currency": "EUR",
        "amount_minor": amount_minor,
        "round_id": "r1",
        "game_id": "g1",
        "provider": "generic",
    } | fields


def credit(transaction_id: str, amount_minor: int = 100, **fields: Any) -> dict[str, Any]:
    return money(transaction_id, amount_minor, kind="win") | fields


def rollback(transaction_id: str, reference: str, amount_minor: int = 100, **fields: Any):
    return money(transaction_id, amount_minor, reference_transaction_id=reference) | fields


async def balance_of(client, player_id: str = "p1") -> int:
    status, player = await send(client, "GET", f"/admin/players/{player_id}")
    assert status == 200
    return int(player["balance_minor"])


async def rows(client) -> list[dict[str, Any]]:
    """Return every stored transaction row, oldest first."""
    records = await client.app[PAM_POOL].fetch("SELECT * FROM pam.transactions ORDER BY seq")
    return [dict(r) for r in records]


async def test_livez_needs_no_signature(pam):
    async with pam.get("/livez") as resp:
        assert resp.status == 200
        assert orjson.loads(await resp.read()) == {"status": "OK"}


async def test_admin_creates_sets_and_reads_players(pam):
    assert await add_player(pam) == {
        "player_id": "p1", "currency": "EUR", "balance_minor": 10_000, "blocked": False,
    }  # fmt: skip
    await add_player(pam, balance_minor=5, blocked=True)
    # Leaving `blocked` out on an update keeps the flag.
    assert (await add_player(pam, balance_minor=7))["blocked"] is True
    status, player = await send(pam, "GET", "/admin/players/p1")
    assert (status, player["balance_minor"], player["blocked"]) == (200, 7, True)
    status, answer = await send(pam, "GET", "/admin/players/nobody")
    assert (status, answer["status"]) == (404, "PLAYER_NOT_FOUND")


async def test_balance_answers_ok_unknown_player_and_other_currency(pam):
    await add_player(pam)
    ask = {"request_id": "b1", "player_id": "p1", "currency": "EUR"}
    assert await post(pam, "/v1/balance", ask) == {
        "status": "OK", "request_id": "b1", "player_id": "p1", "currency": "EUR",
        "balance_minor": 10_000,
    }  # fmt: skip
    other = await post(pam, "/v1/balance", ask | {"currency": "USD"})
    assert (other["status"], other["currency"]) == ("CURRENCY_MISMATCH", "EUR")
    missing = await post(pam, "/v1/balance", ask | {"player_id": "nobody"})
    assert missing["status"] == "PLAYER_NOT_FOUND"


async def test_debit_then_credit_move_the_balance(pam):
    await add_player(pam)
    debit = await post(pam, "/v1/debit", money("d1", 2_500))
    assert debit == {
        "status": "OK", "request_id": "req-d1", "transaction_id": "d1", "currency": "EUR",
        "balance_minor": 7_500, "replay": False,
    }  # fmt: skip
    win = await post(pam, "/v1/credit", credit("c1", 4_000))
    assert (win["status"], win["balance_minor"], win["replay"]) == ("OK", 11_500, False)
    assert [(r["type"], r["state"], r["balance_after"]) for r in await rows(pam)] == [
        ("debit", "applied", 7_500),
        ("credit", "applied", 11_500),
    ]


async def test_replay_answers_like_the_first_time_with_the_current_balance(pam):
    await add_player(pam)
    await post(pam, "/v1/debit", money("d1", 1_000))
    await post(pam, "/v1/credit", credit("c1", 300))
    again = await post(pam, "/v1/debit", money("d1", 1_000, request_id="retry"))
    assert again == {
        "status": "OK", "request_id": "retry", "transaction_id": "d1", "currency": "EUR",
        "balance_minor": 9_300, "replay": True,
    }  # fmt: skip
    assert (await post(pam, "/v1/credit", credit("c1", 300)))["replay"] is True
    assert await balance_of(pam) == 9_300
    assert len(await rows(pam)) == 2


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/debit", money("d1", 999)),
        ("/v1/debit", money("d1", player_id="p2")),
        ("/v1/debit", money("d1", currency="USD")),
        ("/v1/debit", money("d1", round_id="r2")),
        ("/v1/credit", credit("d1")),
        ("/v1/rollback", rollback("d1", "x1")),
    ],
    ids=["amount", "player", "currency", "round", "type-credit", "type-rollback"],
)
async def test_same_id_with_other_data_is_a_mismatch(pam, path, body):
    await add_player(pam)
    await add_player(pam, "p2")
    await post(pam, "/v1/debit", money("d1"))
    answer = await post(pam, path, body)
    assert (answer["status"], answer["replay"]) == ("TRANSACTION_MISMATCH", False)
    assert await balance_of(pam) == 9_900
    assert await balance_of(pam, "p2") == 10_000
    assert len(await rows(pam)) == 1


async def test_insufficient_funds_is_stored_and_replayed(pam):
    await add_player(pam, balance_minor=50)
    refused = await post(pam, "/v1/debit", money("d1", 80))
    assert (refused["status"], refused["balance_minor"]) == ("INSUFFICIENT_FUNDS", 50)
    await add_player(pam, balance_minor=500)
    # The id's refusal is final: a retry replays it even though the money is there now.
    again = await post(pam, "/v1/debit", money("d1", 80))
    assert (again["status"], again["balance_minor"], again["replay"]) == (
        "INSUFFICIENT_FUNDS", 500, True,
    )  # fmt: skip
    assert await balance_of(pam) == 500
    assert [(r["state"], r["status"]) for r in await rows(pam)] == [("rejected", "INSUFFICIENT_FUNDS")]


async def test_unknown_player_and_other_currency_refuse_a_debit(pam):
    await add_player(pam)
    missing = await post(pam, "/v1/debit", money("d1", player_id="nobody"))
    assert (missing["status"], missing["balance_minor"]) == ("PLAYER_NOT_FOUND", 0)
    other = await post(pam, "/v1/debit", money("d2", currency="USD"))
    assert (other["status"], other["currency"]) == ("CURRENCY_MISMATCH", "EUR")
    assert await balance_of(pam) == 10_000


async def test_blocked_player_cannot_bet_but_is_paid(pam):
    await add_player(pam, blocked=True)
    refused = await post(pam, "/v1/debit", money("d1"))
    assert (refused["status"], refused["balance_minor"]) == ("PLAYER_BLOCKED", 10_000)
    paid = await post(pam, "/v1/credit", credit("c1", 700))
    assert (paid["status"], paid["balance_minor"]) == ("OK", 10_700)


async def test_crypto_currency_of_the_account_is_accepted(pam):
    await add_player(pam, currency="USDT")
    answer = await post(pam, "/v1/debit", money("d1", 1, currency="USDT"))
    assert (answer["status"], answer["balance_minor"]) == ("OK", 9_999)


async def test_rollback_refunds_a_debit_once(pam):
    await add_player(pam)
    await post(pam, "/v1/debit", money("d1", 600))
    undo = await post(pam, "/v1/rollback", rollback("rb1", "d1", 600))
    assert (undo["status"], undo["balance_minor"], undo["replay"]) == ("OK", 10_000, False)
    assert (await post(pam, "/v1/rollback", rollback("rb1", "d1", 600)))["replay"] is True
    second = await post(pam, "/v1/rollback", rollback("rb2", "d1", 600))
    assert (second["status"], second["balance_minor"]) == ("OK", 10_000)
    late = await post(pam, "/v1/debit", money("d1", 600))
    assert (late["status"], late["replay"]) == ("TRANSACTION_ROLLED_BACK", True)
    assert await balance_of(pam) == 10_000
    assert [(r["transaction_id"], r["state"], r["amount_minor"]) for r in await rows(pam)] == [
        ("d1", "rolled_back", 600),
        ("rb1", "applied", 600),
        ("rb2", "applied", 0),
    ]


async def test_rollback_takes_back_a_credit_unless_it_was_spent(pam):
    await add_player(pam, balance_minor=0)
    await post(pam, "/v1/credit", credit("c1", 500))
    await post(pam, "/v1/credit", credit("c2", 500))
    await post(pam, "/v1/debit", money("d1", 800))
    taken = await post(pam, "/v1/rollback", rollback("rb1", "c1", 500))
    assert (taken["status"], taken["balance_minor"]) == ("INSUFFICIENT_FUNDS", 200)
    await post(pam, "/v1/rollback", rollback("rb2", "d1", 800))
    taken = await post(pam, "/v1/rollback", rollback("rb3", "c2", 500))
    assert (taken["status"], taken["balance_minor"]) == ("OK", 500)


async def test_rollback_of_an_unknown_id_leaves_a_tombstone_that_refuses_the_debit(pam):
    await add_player(pam)
    undo = await post(pam, "/v1/rollback", rollback("rb1", "d1", 300))
    assert (undo["status"], undo["balance_minor"]) == ("OK", 10_000)
    late = await post(pam, "/v1/debit", money("d1", 300))
    assert (late["status"], late["replay"]) == ("TRANSACTION_ROLLED_BACK", False)
    assert await balance_of(pam) == 10_000
    assert {r["transaction_id"]: r["state"] for r in await rows(pam)} == {
        "rb1": "applied", "d1": "tombstone",
    }  # fmt: skip


async def test_rollback_of_a_refused_debit_moves_nothing(pam):
    await add_player(pam, balance_minor=10)
    await post(pam, "/v1/debit", money("d1", 300))
    undo = await post(pam, "/v1/rollback", rollback("rb1", "d1", 300))
    assert (undo["status"], undo["balance_minor"]) == ("OK", 10)


async def test_rollback_naming_another_players_transaction_is_a_mismatch(pam):
    await add_player(pam)
    await add_player(pam, "p2")
    await post(pam, "/v1/debit", money("d1", 300))
    undo = await post(pam, "/v1/rollback", rollback("rb1", "d1", 300, player_id="p2"))
    assert undo["status"] == "TRANSACTION_MISMATCH"
    assert (await balance_of(pam), await balance_of(pam, "p2")) == (9_700, 10_000)


async def test_fifty_concurrent_identical_debits_apply_once(pam):
    await add_player(pam)
    answers = await asyncio.gather(*(send(pam, "POST", "/v1/debit", money("d1", 100)) for _ in range(50)))
    assert {(s, a["status"], a["balance_minor"]) for s, a in answers} == {(200, "OK", 9_900)}
    assert sorted(a["replay"] for _, a in answers) == [False] + [True] * 49
    assert await balance_of(pam) == 9_900
    assert len(await rows(pam)) == 1


async def test_a_debit_racing_its_rollback_never_leaves_money_moved(pam):
    await add_player(pam)

    async def race(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
        debit = send(pam, "POST", "/v1/debit", money(f"d{i}", 100))
        undo = send(pam, "POST", "/v1/rollback", rollback(f"rb{i}", f"d{i}", 100))
        # Start either side first, so both orders of arrival are exercised.
        if i % 2:
            (_, debit_answer), (_, undo_answer) = await asyncio.gather(debit, undo)
        else:
            (_, undo_answer), (_, debit_answer) = await asyncio.gather(undo, debit)
        return debit_answer, undo_answer

    pairs = await asyncio.gather(*(race(i) for i in range(20)))
    for debit, undo in pairs:
        assert debit["status"] in {"OK", "TRANSACTION_ROLLED_BACK"}
        assert undo["status"] == "OK"
    assert await balance_of(pam) == 10_000
    debits = [r for r in await rows(pam) if r["type"] == "debit"]
    assert {r["state"] for r in debits} <= {"rolled_back", "tombstone"}


async def test_keys_rotate_every_configured_key_id_is_accepted(pam):
    await add_player(pam)
    old = Signer("2024-old", b"old secret")
    status, answer = await send(pam, "POST", "/v1/debit", money("d1"), signer=old)
    assert (status, answer["status"]) == (200, "OK")
    status, answer = await send(pam, "POST", "/v1/debit", money("d2"))
    assert (status, answer["status"]) == (200, "OK")


@pytest.mark.parametrize(
    ("signer", "skew_s", "headers"),
    [
        (Signer("2025-new", b"wrong secret"), 0, None),
        (Signer("retired", b"new secret"), 0, None),
        (SIGNER, -301, None),
        (SIGNER, 301, None),
        (SIGNER, 0, {"X-Croupier-Signature": ""}),
        (SIGNER, 0, {"X-Croupier-Timestamp": "soon"}),
    ],
    ids=["wrong-secret", "unknown-key-id", "stale", "future", "missing", "bad-timestamp"],
)
async def test_a_bad_signature_is_refused_and_writes_nothing(pam, signer, skew_s, headers):
    await add_player(pam)
    status, answer = await send(
        pam, "POST", "/v1/debit", money("d1"), signer=signer, now_s=time.time() + skew_s,
        headers=headers,
    )  # fmt: skip
    assert (status, answer["status"]) == (401, "INVALID_SIGNATURE")
    assert await balance_of(pam) == 10_000
    assert await rows(pam) == []


async def test_a_signature_is_bound_to_its_endpoint(pam):
    await add_player(pam)
    body = orjson.dumps(credit("c1", 5_000))
    signed = SIGNER.headers("POST", "/v1/debit", body)
    async with pam.post("/v1/credit", data=body, headers=signed) as resp:
        assert resp.status == 401
    assert await rows(pam) == []


def bad(case_id: str, raw: bytes | dict[str, Any], path: str = "/v1/debit") -> Any:
    return pytest.param(path, raw if isinstance(raw, bytes) else orjson.dumps(raw), id=case_id)


BAD_INPUT = [
    bad("malformed", b"{not json"),
    bad("array", b"[1, 2]"),
    bad("empty", b""),
    bad("missing-field", {k: v for k, v in money("d1").items() if k != "round_id"}),
    bad("bool-amount", money("d1", amount_minor=True)),
    bad("float-amount", money("d1", amount_minor=1.0)),
    bad("string-amount", money("d1", amount_minor="100")),
    bad("negative", money("d1", amount_minor=-1)),
    bad("huge", money("d1", amount_minor=10**15 + 1)),
    bad("beyond-64-bits", b'{"amount_minor": 100000000000000000000000}'),
    bad("int-player", money("d1", player_id=7)),
    bad("empty-id", money("")),
    bad("lowercase-currency", money("d1", currency="eur")),
    bad("bad-currency", money("d1", currency="EURO-1")),
    bad("unknown-currency", money("d1", currency="ZZZ")),
    bad("unknown-kind", credit("c1", kind="gift"), "/v1/credit"),
    bad("no-kind", money("c1"), "/v1/credit"),
    bad("no-reference", money("rb1"), "/v1/rollback"),
    bad("balance-currency", {"request_id": "b", "player_id": "p1", "currency": "ZZZ"}, "/v1/balance"),
    bad("admin-no-balance", {"player_id": "p1", "currency": "EUR"}, "/admin/players"),
    bad(
        "admin-string-blocked",
        {"player_id": "p1", "currency": "EUR", "balance_minor": 1, "blocked": "yes"},
        "/admin/players",
    ),
]


@pytest.mark.parametrize(("path", "raw"), BAD_INPUT)
async def test_bad_input_is_refused_and_writes_nothing(pam, path, raw):
    await add_player(pam)
    status, answer = await send(pam, "POST", path, raw=raw)
    assert (status, answer["status"]) == (400, "INVALID_REQUEST")
    assert await balance_of(pam) == 10_000
    assert await rows(pam) == []


async def test_an_oversized_body_is_refused_with_413(pam):
    await add_player(pam)
    body = orjson.dumps(money("d1", padding="x" * MAX_BODY_BYTES))
    status, answer = await send(pam, "POST", "/v1/debit", raw=body)
    assert (status, answer["status"]) == (413, "INVALID_REQUEST")
    assert await rows(pam) == []


async def test_an_oversized_chunked_body_is_refused_with_413(pam):
    await add_player(pam)
    body = orjson.dumps(money("d1", padding="x" * MAX_BODY_BYTES))

    async def chunks():
        for start in range(0, len(body), 1024):
            yield body[start : start + 1024]

    signed = SIGNER.headers("POST", "/v1/debit", body)
    async with pam.post("/v1/debit", data=chunks(), headers=signed) as resp:
        assert resp.status == 413
        assert orjson.loads(await resp.read())["status"] == "INVALID_REQUEST"
    assert await rows(pam) == []


async def test_the_listing_pages_with_a_cursor_and_leaves_refusals_out(pam):
    await add_player(pam, balance_minor=1_000)
    for i in range(5):
        await post(pam, "/v1/debit", money(f"d{i}", 100))
    await post(pam, "/v1/debit", money("too-much", 10_000))
    await post(pam, "/v1/rollback", rollback("rb1", "d0", 100))
    await post(pam, "/v1/rollback", rollback("rb2", "never", 100))
    seen: list[dict[str, Any]] = []
    query: dict[str, str | int] = {"limit": 3}
    while True:
        status, page = await send(pam, "GET", "/v1/transactions?" + urlencode(query))
        assert (status, page["status"]) == (200, "OK")
        assert len(page["transactions"]) <= 3
        seen += page["transactions"]
        if page["next_cursor"] is None:
            break
        query["after"] = page["next_cursor"]
    assert [(t["transaction_id"], t["type"], t["state"]) for t in seen] == [
        ("d0", "debit", "rolled_back"),
        *((f"d{i}", "debit", "applied") for i in range(1, 5)),
        ("rb1", "rollback", "applied"),
        ("rb2", "rollback", "applied"),
        ("never", "debit", "tombstone"),
    ]
    assert seen[5]["reference_transaction_id"] == "d0"
    assert set(seen[0]) == {
        "transaction_id", "type", "player_id", "currency", "amount_minor", "round_id",
        "reference_transaction_id", "state", "created_at",
    }  # fmt: skip


async def test_the_listing_filters_by_time_and_checks_its_query(pam):
    await add_player(pam)
    await post(pam, "/v1/debit", money("d1"))
    window = {"since": "2000-01-01T00:00:00+00:00", "until": "2100-01-01T00:00:00Z"}
    status, page = await send(pam, "GET", "/v1/transactions?" + urlencode(window))
    assert (status, [t["transaction_id"] for t in page["transactions"]]) == (200, ["d1"])
    status, page = await send(pam, "GET", "/v1/transactions?since=2100-01-01T00:00:00")
    assert (status, page["transactions"], page["next_cursor"]) == (200, [], None)
    for query in ("limit=0", "limit=1001", "limit=ten", "after=-1", "since=yesterday"):
        status, answer = await send(pam, "GET", f"/v1/transactions?{query}")
        assert (status, answer["status"]) == (400, "INVALID_REQUEST"), query


def test_the_openapi_document_is_valid():
    spec = yaml.safe_load(SPEC.read_text("utf-8"))
    validate(spec)
    assert spec["openapi"].startswith("3.1")
    statuses = spec["components"]["schemas"]["Status"]["enum"]
    assert statuses == [
        "OK", "INSUFFICIENT_FUNDS", "PLAYER_NOT_FOUND", "PLAYER_BLOCKED", "CURRENCY_MISMATCH",
        "LIMIT_EXCEEDED", "TRANSACTION_MISMATCH", "TRANSACTION_ROLLED_BACK", "INVALID_REQUEST",
        "INVALID_SIGNATURE", "INTERNAL_ERROR",
    ]  # fmt: skip
    assert {"/v1/balance", "/v1/debit", "/v1/credit", "/v1/rollback", "/v1/transactions"} == set(
        spec["paths"]
    )
