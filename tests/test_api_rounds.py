"""Round and transaction history (GET /v1/rounds, /v1/rounds/{id}, /v1/transactions/...).

Rounds are played through generic-provider callbacks, as a studio would play them; the ledger
backend serves the plain cases, and a seamless operator behind a fault proxy the ones where the
operator's wallet is slow, unreachable or refuses.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from api_support import *  # noqa: F403 -- the api fixture
from api_support import GENERIC_KEY_ID, GENERIC_SECRET, ApiEnv, api_settings, hmac_key_id, hmac_secret
from helpers import *  # noqa: F403 -- the harness fixture
from helpers import OPERATOR_KEY_ID, OPERATOR_SECRET, Harness, Pam
from proxy import FaultProxy, Mode

from gateway import keys
from gateway.app import create_app
from gateway.sessions import DEMO_SUFFIX
from providers.base import ProviderConfig
from providers.generic.simulator import Answer, GenericSimulator
from wallet.pam import store
from wallet.signing import Signer

PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}


async def play(api: ApiEnv, operation: str, player: str, operator: str = "op1", **fields: Any) -> Answer:
    """Send one generic callback for a player of an operator; None fields are left out."""
    body = {"operator": operator, "player_id": player, "currency": "EUR"}
    body |= {k: v for k, v in fields.items() if v is not None}
    return await api.generic_call(operation, body)


async def bet(api: ApiEnv, player: str, tx: str, amount: str, round_id: str, operator: str = "op1") -> Answer:
    """Place a bet in a fresh session of the player."""
    mode = "demo" if operator.endswith(DEMO_SUFFIX) else "real"
    session = await api.app[keys.SESSIONS].create(operator, player, "EUR", "generic", "g1", mode=mode)
    return await play(
        api,
        "debit",
        player,
        operator,
        session_token=session.token,
        transaction_id=tx,
        amount=amount,
        round_id=round_id,
        game_id="g1",
    )


async def rounds(api: ApiEnv, player: str, operator: str = "op1", **params: Any) -> list[dict[str, Any]]:
    """Return one page of a player's rounds as an operator sees them."""
    reply = await api.as_(operator).get("/v1/rounds", params={"player_id": player, **params})
    assert reply.status == 200, reply.body
    return list(reply.body["rounds"])


async def only_round(api: ApiEnv, player: str) -> dict[str, Any]:
    """Return the player's one round in detail, with its transactions."""
    [listed] = await rounds(api, player)
    reply = await api.as_("op1").get(f"/v1/rounds/{listed['id']}")
    assert reply.status == 200, reply.body
    # The listing and the detail agree on every field the listing has.
    assert {k: v for k, v in reply.body.items() if k != "transactions"} == listed
    return dict(reply.body)


async def transactions(api: ApiEnv, external_id: str, operator: str = "op1") -> list[dict[str, Any]]:
    """Return what a generic transaction id did, as an operator sees it."""
    reply = await api.as_(operator).get(f"/v1/transactions/generic/{external_id}")
    assert reply.status == 200, reply.body
    return list(reply.body["transactions"])


def summary(txs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Return each transaction's kind, provider id, status and amount."""
    return [(t["kind"], t["external_id"], t["status"], t["amount_minor"]) for t in txs]


# The ledger backend: settled, rolled back, rejected.


async def test_bet_win_and_end_make_a_settled_round(api: ApiEnv):
    """A bet, its win and the end of the round: settled, with each transaction applied."""
    await api.open_player("op1", "p1", 10_000)
    assert (await bet(api, "p1", "b1", "2.50", "r1")).ok
    assert (await play(api, "credit", "p1", transaction_id="w1", amount="4.00", round_id="r1")).ok
    assert (await play(api, "end_round", "p1", transaction_id="e1", round_id="r1")).ok

    found = await only_round(api, "p1")
    assert (found["provider"], found["round_id"], found["player_id"], found["game_id"]) == (
        "generic",
        "r1",
        "p1",
        "g1",
    )
    assert (found["status"], found["settlement"], found["currency"]) == ("closed", "settled", "EUR")
    assert (found["bets_minor"], found["wins_minor"], found["refunds_minor"], found["net_minor"]) == (
        250,
        400,
        0,
        150,
    )
    assert found["closed_at"] is not None
    assert summary(found["transactions"]) == [
        ("debit", "b1", "applied", 250),
        ("credit", "w1", "applied", 400),
        ("end_round", "e1", "applied", None),
    ]
    debit, credit, _ = found["transactions"]
    assert (credit["credit_kind"], debit["credit_kind"]) == ("win", None)
    # The ledger backend keeps the money itself: nothing is ever queued for an operator.
    assert {t["delivery"] is None for t in found["transactions"]} == {True}
    [looked_up] = await transactions(api, "w1")
    assert looked_up == credit


async def test_refunded_bet_rolls_the_round_back(api: ApiEnv):
    """A refund that shares the bet's id and names no round still lands in the bet's round."""
    await api.open_player("op1", "p1", 10_000)
    assert (await bet(api, "p1", "t1", "2.50", "r1")).ok
    # The refund reuses the bet's id and carries no round id, as several protocols send it.
    assert (await play(api, "rollback", "p1", transaction_id="t1", reference_transaction_id="t1")).ok
    assert (await play(api, "end_round", "p1", transaction_id="e1", round_id="r1")).ok

    found = await only_round(api, "p1")
    assert (found["settlement"], found["refunds_minor"], found["net_minor"]) == ("rolled_back", 250, 0)
    assert summary(found["transactions"]) == [
        ("debit", "t1", "rolled_back", 250),
        ("rollback", "t1", "applied", None),
        ("end_round", "e1", "applied", None),
    ]
    refund = found["transactions"][1]
    assert (refund["round_id"], refund["reference_id"]) == (None, "t1")
    # One provider id, two operations: the look-up returns both.
    assert summary(await transactions(api, "t1")) == summary(found["transactions"][:2])


async def test_refused_bet_shows_rejected_with_its_reason(api: ApiEnv):
    """A bet refused for insufficient funds is rejected with that reason, and its round took nothing."""
    await api.open_player("op1", "p1", 100)
    assert (await bet(api, "p1", "b1", "2.50", "r1")).code == "INSUFFICIENT_FUNDS"

    [tx] = await transactions(api, "b1")
    assert (tx["status"], tx["reason"], tx["amount_minor"], tx["round_id"]) == (
        "rejected",
        "insufficient_funds",
        250,
        "r1",
    )
    found = await only_round(api, "p1")
    assert (found["settlement"], found["bets_minor"], found["net_minor"]) == ("open", 0, 0)
    assert summary(found["transactions"]) == [("debit", "b1", "rejected", 250)]


async def test_refund_before_its_bet_is_a_rolled_back_tombstone(api: ApiEnv):
    """A refund that arrives before its bet: the bet's id reads rolled back, and the late bet is refused."""
    await api.open_player("op1", "p1", 10_000)
    assert (await play(api, "rollback", "p1", transaction_id="rb1", reference_transaction_id="b1")).ok
    assert (await bet(api, "p1", "b1", "2.50", "r1")).code == "TRANSACTION_ROLLED_BACK"

    [tombstone] = await transactions(api, "b1")
    assert (tombstone["kind"], tombstone["status"], tombstone["reason"]) == ("debit", "rolled_back", None)
    [refund] = await transactions(api, "rb1")
    assert (refund["kind"], refund["status"], refund["reference_id"]) == ("rollback", "applied", "b1")


# Listing: pages, windows, filters.


async def test_pages_return_each_round_once_newest_first(api: ApiEnv):
    """Paging through a player's rounds two at a time returns each once, even rounds opened together."""
    await api.open_player("op1", "p1", 100_000)
    for n in range(5):
        assert (await bet(api, "p1", f"b{n}", "1.00", f"r{n}")).ok
    # Rounds opened in one batched commit share a moment; the test cannot make two provider calls
    # share a transaction, so it gives three rounds the same opening moment itself.
    await api.app[keys.PG_POOL].execute(
        "UPDATE croupier.rounds SET opened_at = (SELECT opened_at FROM croupier.rounds"
        " WHERE round_id = 'r1') WHERE round_id IN ('r1', 'r2', 'r3')"
    )
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10):
        reply = await api.as_("op1").get(
            "/v1/rounds", params={"player_id": "p1", "limit": 2, "cursor": cursor}
        )
        assert reply.status == 200, reply.body
        assert len(reply.body["rounds"]) <= 2
        seen += reply.body["rounds"]
        cursor = reply.body["next_cursor"]
        if cursor is None:
            break
    assert sorted(r["round_id"] for r in seen) == ["r0", "r1", "r2", "r3", "r4"]
    assert len(seen) == 5
    assert seen[0]["round_id"] == "r4"
    assert seen[-1]["round_id"] == "r0"
    moments = [r["opened_at"] for r in seen]
    assert moments == sorted(moments, reverse=True)
    # A page that ends exactly at the oldest round says there is no next page.
    first = await api.as_("op1").get("/v1/rounds", params={"player_id": "p1", "limit": 5})
    assert (len(first.body["rounds"]), first.body["next_cursor"]) == (5, None)


async def test_window_and_filters_select_rounds(api: ApiEnv):
    """The window takes `from` inclusive and `to` exclusive; provider and round_id narrow the list."""
    await api.open_player("op1", "p1", 100_000)
    for n in range(4):
        assert (await bet(api, "p1", f"b{n}", "1.00", f"r{n}")).ok
    newest_first = await rounds(api, "p1")
    assert [r["round_id"] for r in newest_first] == ["r3", "r2", "r1", "r0"]
    at = {r["round_id"]: r["opened_at"] for r in newest_first}

    async def ids(**params: Any) -> list[str]:
        return [r["round_id"] for r in await rounds(api, "p1", **params)]

    assert await ids(**{"from": at["r2"]}) == ["r3", "r2"]
    assert await ids(to=at["r2"]) == ["r1", "r0"]
    assert await ids(**{"from": at["r1"], "to": at["r3"]}) == ["r2", "r1"]
    assert await ids(round_id="r1") == ["r1"]
    assert await ids(provider="generic", limit=1) == ["r3"]
    assert await ids(provider="pragmatic") == []
    assert await ids(**{"from": at["r3"], "to": at["r3"]}) == []


async def test_other_operators_and_demo_play_are_invisible(api: ApiEnv):
    """Another operator's round, listing and transaction ids answer as if they did not exist; so does demo."""
    await api.open_player("op1", "p1", 10_000)
    await api.open_player("op2", "p1", 10_000)
    await api.open_player("op1" + DEMO_SUFFIX, "p1", 10_000)
    assert (await bet(api, "p1", "mine", "1.00", "r1")).ok
    assert (await bet(api, "p1", "theirs", "2.00", "r1", operator="op2")).ok
    assert (await bet(api, "p1", "play", "3.00", "r-demo", operator="op1" + DEMO_SUFFIX)).ok

    [own] = await rounds(api, "p1")
    assert (own["bets_minor"], own["round_id"]) == (100, "r1")
    [other] = await rounds(api, "p1", operator="op2")
    assert other["bets_minor"] == 200
    assert other["id"] != own["id"]

    for operator, round_uuid, tx in (("op2", own["id"], "mine"), ("op1", other["id"], "theirs")):
        missing = await api.as_(operator).get(f"/v1/rounds/{round_uuid}")
        assert (missing.status, missing.body["code"]) == (404, "not_found")
        missing = await api.as_(operator).get(f"/v1/transactions/generic/{tx}")
        assert (missing.status, missing.body["code"]) == (404, "not_found")
    never = await api.as_("op1").get("/v1/rounds/00000000-0000-4000-8000-000000000000")
    assert (never.status, never.body["code"]) == (404, "not_found")
    # Demo play is booked under the operator's play-money ledger, never in its history.
    demo = await api.as_("op1").get("/v1/transactions/generic/play")
    assert (demo.status, demo.body["code"]) == (404, "not_found")
    assert await transactions(api, "theirs", operator="op2") != []


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/rounds", {}),
        ("/v1/rounds", {"player_id": "p1", "from": "yesterday"}),
        ("/v1/rounds", {"player_id": "p1", "to": "2025-01-01T00:00:00"}),
        ("/v1/rounds", {"player_id": "p1", "from": "2025-01-02T00:00:00Z", "to": "2025-01-01T00:00:00Z"}),
        ("/v1/rounds", {"player_id": "p1", "limit": 0}),
        ("/v1/rounds", {"player_id": "p1", "limit": 501}),
        ("/v1/rounds", {"player_id": "p1", "limit": "-1"}),
        ("/v1/rounds", {"player_id": "p1", "cursor": "not-a-cursor"}),
        ("/v1/rounds", {"player_id": "p1", "colour": "red"}),
        ("/v1/rounds/not-a-uuid", {}),
    ],
    ids=[
        "no-player",
        "bad-date",
        "no-offset",
        "from-after-to",
        "limit-0",
        "limit-501",
        "limit-negative",
        "bad-cursor",
        "unknown-parameter",
        "bad-uuid",
    ],
)
async def test_bad_query_is_400_and_nothing_else(api: ApiEnv, path: str, params: dict[str, Any]):
    """A malformed query answers 400 invalid_request with only the problem, never a partial page."""
    await api.open_player("op1", "p1", 10_000)
    assert (await bet(api, "p1", "b1", "1.00", "r1")).ok
    reply = await api.as_("op1").get(path, params=params, check_request=False)
    assert (reply.status, reply.body["code"]) == (400, "invalid_request")
    assert set(reply.body) == PROBLEM_FIELDS


async def test_repeated_parameter_is_400(api: ApiEnv):
    """A parameter given twice is refused rather than one of its values picked silently."""
    path_qs = "/v1/rounds?player_id=p1&limit=1&limit=2"
    headers = Signer(hmac_key_id("op1"), hmac_secret("op1")).headers("GET", path_qs, b"")
    async with api.client.get(path_qs, headers=headers) as resp:
        assert resp.status == 400
        body = orjson.loads(await resp.read())
    assert (body["code"], set(body)) == ("invalid_request", PROBLEM_FIELDS)
    assert "limit" in body["detail"]


# The seamless backend: unknown outcomes, queued payments, refusals for good.


@dataclasses.dataclass(slots=True)
class Seamless:
    """An Operator API gateway whose op1 keeps its money in a reference PAM behind a fault proxy."""

    api: ApiEnv
    pam: Pam
    proxy: FaultProxy

    async def run_outbox(self, passes: int = 1) -> int:
        """Run the outbox worker's pass a few times; return how many rows it finished."""
        worker = self.api.app[keys.OUTBOX]
        return sum([await worker.run_once() for _ in range(passes)])


async def seamless_api(harness: Harness, **timeouts: float) -> Seamless:
    """Start a PAM, a proxy before it and a gateway whose op1 is seamless through the proxy."""
    pam = await harness.pam()
    proxy = FaultProxy("127.0.0.1", pam.port)
    await proxy.start()
    harness.stack.push_async_callback(proxy.close)
    settings = api_settings(harness.database_url, harness.redis_url)
    op1 = settings.operators["op1"]
    op1 = dataclasses.replace(
        op1,
        policy=dataclasses.replace(op1.policy, **timeouts),
        backend="seamless",
        wallet_url=proxy.url,
        key_id=OPERATOR_KEY_ID,
        secret=OPERATOR_SECRET,
    )
    settings = dataclasses.replace(settings, operators={**settings.operators, "op1": op1})
    client = TestClient(TestServer(create_app(settings), host="127.0.0.1"))
    await client.start_server()
    harness.stack.push_async_callback(client.close)
    generic = GenericSimulator(
        str(client.make_url("/")), client.session, ProviderConfig("generic", {GENERIC_KEY_ID: GENERIC_SECRET})
    )
    await store.set_player(pam.pool, "p1", "EUR", 10_000, blocked=False)
    return Seamless(ApiEnv(client, generic), pam, proxy)


# Deadlines small enough that an unreachable operator turns into a queued payment at once.
FAST = {"call_timeout_s": 0.2, "debit_deadline_s": 0.3, "credit_deadline_s": 0.3, "recovery_after_s": 0.5}


async def test_bet_in_flight_at_the_operator_is_unknown(harness: Harness):
    """While the operator has not answered a bet, the bet and its round are unknown; then applied, open."""
    env = await seamless_api(harness, call_timeout_s=30.0, debit_deadline_s=30.0)
    pool = env.api.app[keys.PG_POOL]
    # The PAM locks the player's row to take a bet: holding that lock keeps the bet in flight.
    async with env.pam.pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM pam.players WHERE player_id = 'p1' FOR UPDATE")
        placing = asyncio.create_task(bet(env.api, "p1", "b1", "2.50", "r1"))
        for _ in range(500):
            if await pool.fetchval("SELECT state FROM croupier.operations WHERE external_id = 'b1'"):
                break
            await asyncio.sleep(0.01)
        [tx] = await transactions(env.api, "b1")
        assert (tx["status"], tx["delivery"]["state"]) == ("unknown", "scheduled")
        found = await only_round(env.api, "p1")
        assert found["settlement"] == "unknown"
        assert not placing.done()
    assert (await placing).ok
    [tx] = await transactions(env.api, "b1")
    # The answer came in time: the safety-net cancellation was called off.
    assert (tx["status"], tx["delivery"]["state"]) == ("applied", "cancelled")
    assert (await only_round(env.api, "p1"))["settlement"] == "open"


async def test_declined_bet_stays_unknown_until_the_operator_takes_its_cancellation(harness: Harness):
    """A bet declined for a lost answer stays unknown until the operator takes its cancellation."""
    env = await seamless_api(harness, **FAST)
    env.proxy.set_mode(Mode.DROP_REPLIES)
    assert (await bet(env.api, "p1", "b1", "2.50", "r1")).code == "BET_DECLINED"
    [tx] = await transactions(env.api, "b1")
    assert (tx["status"], tx["reason"], tx["delivery"]["state"]) == (
        "unknown",
        "operator_unknown",
        "scheduled",
    )
    assert (await only_round(env.api, "p1"))["settlement"] == "unknown"

    env.proxy.set_mode(Mode.PASS)
    assert await env.run_outbox(passes=3) == 1
    [tx] = await transactions(env.api, "b1")
    assert (tx["status"], tx["reason"], tx["delivery"]["state"]) == (
        "rejected",
        "operator_unknown",
        "delivered",
    )
    assert tx["delivery"]["delivered_at"] is not None
    assert await env.pam.balance("p1") == 10_000
    found = await only_round(env.api, "p1")
    assert (found["settlement"], found["bets_minor"]) == ("open", 0)


async def test_queued_win_is_pending_delivery_then_failed_when_refused_for_good(harness: Harness):
    """A win the operator cannot take is pending delivery; refused for good by it, delivery failed."""
    env = await seamless_api(harness, **FAST)
    assert (await bet(env.api, "p1", "b1", "1.00", "r1")).ok
    env.proxy.set_mode(Mode.CUT)
    win = await play(env.api, "credit", "p1", transaction_id="w1", amount="3.00", round_id="r1")
    assert win.body["queued"] is True
    assert (await play(env.api, "end_round", "p1", transaction_id="e1", round_id="r1")).ok

    found = await only_round(env.api, "p1")
    assert (found["status"], found["settlement"]) == ("closed", "pending_delivery")
    assert summary(found["transactions"]) == [
        ("debit", "b1", "applied", 100),
        ("credit", "w1", "pending_delivery", 300),
        ("end_round", "e1", "applied", None),
    ]
    queued = found["transactions"][1]["delivery"]
    assert (queued["state"], queued["delivered_at"]) == ("scheduled", None)

    # The player's account disappears at the operator: a definite refusal of the owed win.
    await env.pam.pool.execute("UPDATE pam.players SET player_id = 'gone' WHERE player_id = 'p1'")
    env.proxy.set_mode(Mode.PASS)
    await env.run_outbox()
    found = await only_round(env.api, "p1")
    assert found["settlement"] == "delivery_failed"
    credit = found["transactions"][1]
    assert credit["status"] == "delivery_failed"
    assert (credit["delivery"]["state"], credit["delivery"]["last_error"]) == ("dead", "PLAYER_NOT_FOUND")
    assert credit["delivery"]["attempts"] >= 1


async def test_refund_not_yet_acknowledged_keeps_the_round_pending(harness: Harness):
    """A refund queued for the operator leaves the round pending delivery; once delivered, rolled back."""
    env = await seamless_api(harness, **FAST)
    assert (await bet(env.api, "p1", "b1", "2.50", "r1")).ok
    env.proxy.set_mode(Mode.CUT)
    refund = await play(env.api, "rollback", "p1", transaction_id="rb1", reference_transaction_id="b1")
    assert refund.body["queued"] is True

    found = await only_round(env.api, "p1")
    assert found["settlement"] == "pending_delivery"
    assert [(t["external_id"], t["status"]) for t in found["transactions"]] == [
        ("b1", "rolled_back"),
        ("rb1", "pending_delivery"),
    ]
    env.proxy.set_mode(Mode.PASS)
    assert await env.run_outbox() == 1
    found = await only_round(env.api, "p1")
    assert found["settlement"] == "rolled_back"
    assert [(t["external_id"], t["status"]) for t in found["transactions"]] == [
        ("b1", "rolled_back"),
        ("rb1", "applied"),
    ]
    assert await env.pam.balance("p1") == 10_000
