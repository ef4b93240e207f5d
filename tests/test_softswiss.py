"""The SoftSwiss-style protocol end to end against a real gateway, PostgreSQL and Redis.

Native codes and the test that produces each:
    100 not enough funds ............ test_batch_stops_at_the_first_refusal
    101 player invalid .............. test_player_refusals (unknown player, ended session)
    106 bet exceeded max bet limit .. test_player_refusals
    110 player disabled ............. test_player_refusals
    154 currency not allowed ........ test_player_refusals
    120 round finished .............. test_a_bet_into_a_finished_round_is_refused
    122 bet rolled back ............. test_a_win_after_a_rolled_back_bet_is_refused
    123 already settled ............. test_a_rollback_after_a_win_is_refused
    124 action rolled back .......... test_rollback_of_an_unseen_action_is_recorded_and_blocks_it
    125 casino's wallet refused ..... test_seamless_operator_outcomes
    126 bet declined ................ test_seamless_operator_outcomes
    400 bad request ................. test_malformed_calls_write_nothing, test_oversized_body
    403 request sign doesn't match .. test_signature_failures_write_nothing
    409 action_id reused ............ test_a_reused_action_id_is_a_mismatch
    500 internal, retry ............. test_seamless_operator_outcomes
    503 in progress, retry .......... test_seamless_operator_outcomes
Never produced here: 121 (wins without bets are paid, and a rollback of an unseen bet is a
tombstone) and 404 (no route looks a transaction up); 105 and 153 are never sent by Croupier.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway import keys
from gateway.app import create_app
from gateway.settings import OperatorSettings, Settings
from providers.base import LaunchRequest, ProviderConfig
from providers.simulator import Outcome, SimPlayer, SimulatorOptions
from providers.softswiss.adapter import SoftswissAdapter
from providers.softswiss.signing import SIGN_HEADER, sign
from providers.softswiss.simulator import SoftswissSimulator
from wallet.backends.ledger import open_account
from wallet.errors import Reason
from wallet.policy import OperatorPolicy

TOKEN = b"softswiss shared auth token"
OLD_TOKEN = b"softswiss previous token"
OPERATOR = "op1"
OPENING = 10_000
GAMES = [{"id": "bgaming:ElvisFrog", "name": "Elvis Frog", "rtp_variants": ["96", "94"]}]
CONFIG = ProviderConfig(
    "softswiss",
    {"current": TOKEN, "previous": OLD_TOKEN},
    {"games": GAMES, "launch_base_url": "https://studio.example.test", "casino_id": "croupier-1"},
)
FAST = SimulatorOptions(timeout_s=5.0, retry_delay_s=0.01, max_retries=20)


@dataclass(slots=True)
class Gw:
    """One gateway under test, with its database and a simulator talking to it."""

    app: web.Application
    client: TestClient
    sim: SoftswissSimulator

    @property
    def pool(self) -> asyncpg.Pool:
        """Return the gateway's connection pool."""
        return self.app[keys.PG_POOL]

    async def open(self, player_id: str = "p1", balance: int = OPENING, *, blocked: bool = False) -> None:
        """Open a ledger account in EUR."""
        async with self.pool.acquire() as conn:
            await open_account(conn, OPERATOR, player_id, "EUR", balance, blocked=blocked)

    async def balance(self, player_id: str = "p1") -> int:
        """Return the ledger balance."""
        value = await self.pool.fetchval(
            "SELECT balance_minor FROM croupier.accounts WHERE operator = $1 AND player_id = $2",
            OPERATOR,
            player_id,
        )
        return int(value)

    async def session(self, player_id: str = "p1") -> str:
        """Open a session and return its token."""
        created = await self.app[keys.SESSIONS].create(OPERATOR, player_id, "EUR", "softswiss", "g")
        return created.token

    async def rows(self) -> int:
        """Return how many operations are stored."""
        return int(await self.pool.fetchval("SELECT count(*) FROM croupier.operations"))

    async def post(
        self, path: str, payload: dict[str, Any] | bytes, *, key: bytes | None = TOKEN
    ) -> tuple[int, dict[str, Any]]:
        """Send one call, signed with a token (or unsigned with key=None)."""
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers[SIGN_HEADER] = sign(key, body)
        resp = await self.client.post(f"/providers/softswiss{path}", data=body, headers=headers)
        return resp.status, orjson.loads(await resp.read())


def call(
    *actions: dict[str, Any],
    player_id: str = "p1",
    game_id: str | None = "r1",
    finished: bool = False,
    currency: str = "EUR",
    **extra: Any,
) -> dict[str, Any]:
    """Return a /play or /rollback body."""
    body: dict[str, Any] = {
        "user_id": f"{OPERATOR}:{player_id}",
        "currency": currency,
        "game": "bgaming:ElvisFrog",
        "finished": finished,
        "actions": list(actions),
    }
    if game_id is not None:
        body["game_id"] = game_id
    body.update(extra)
    return body


def bet(action_id: Any, amount: Any, **extra: Any) -> dict[str, Any]:
    """Return a bet action."""
    return {"action": "bet", "action_id": action_id, "amount": amount, **extra}


def win(action_id: str, amount: Any) -> dict[str, Any]:
    """Return a win action."""
    return {"action": "win", "action_id": action_id, "amount": amount}


def rollback(action_id: str, original: str) -> dict[str, Any]:
    """Return a rollback action."""
    return {"action": "rollback", "action_id": action_id, "original_action_id": original}


async def start(aiohttp_client: Any, db: str, redis: str, operator: OperatorSettings | None = None) -> Gw:
    """Start a gateway with the softswiss provider and one operator (ledger unless told)."""
    op = operator or OperatorSettings(OperatorPolicy(OPERATOR, max_bet_minor={"EUR": 50_000}))
    settings = Settings(
        database_url=db, redis_url=redis, operators={OPERATOR: op}, providers={"softswiss": CONFIG}
    )
    app = create_app(settings)
    client = await aiohttp_client(app)
    sim = SoftswissSimulator(str(client.make_url("/")), client.session, CONFIG, FAST)
    return Gw(app, client, sim)


@pytest.fixture
async def gw(aiohttp_client: Any, fresh_db: str, fresh_redis: str) -> Gw:
    """Return a ledger-backed gateway with player p1 holding 100.00 EUR."""
    gateway = await start(aiohttp_client, fresh_db, fresh_redis)
    await gateway.open()
    return gateway


# /play


async def test_bet_and_win_in_one_call_apply_in_order(gw: Gw) -> None:
    """A call with a bet and a win applies both, reports each action, and finished closes the round."""
    status, body = await gw.post("/play", call(bet("b1", 500), win("w1", 1200), finished=True))
    assert status == 200
    assert body["balance"] == OPENING - 500 + 1200 == await gw.balance()
    assert body["game_id"] == "r1"
    assert [t["action_id"] for t in body["transactions"]] == ["b1", "w1"]
    stored = await gw.pool.fetch(
        "SELECT kind, external_id, transaction_id, created_at FROM croupier.operations ORDER BY id"
    )
    assert [(r["kind"], r["external_id"]) for r in stored] == [
        ("debit", "b1"),
        ("credit", "w1"),
        ("end_round", "r1"),
    ]
    for sent, row in zip(body["transactions"], stored, strict=False):
        assert sent["tx_id"] == str(row["transaction_id"])
        assert datetime.fromisoformat(sent["processed_at"]) == row["created_at"]
    state = await gw.pool.fetchval("SELECT state FROM croupier.rounds WHERE round_id = 'r1'")
    assert state == "closed"


async def test_a_repeated_call_answers_the_same_ids_and_moments(gw: Gw) -> None:
    """The same call again moves no money and answers the same tx_id and processed_at per action."""
    payload = call(bet("b1", 500), win("w1", 100), finished=True)
    first = await gw.post("/play", payload)
    second = await gw.post("/play", payload)
    assert first[0] == second[0] == 200
    assert second[1]["transactions"] == first[1]["transactions"]
    assert second[1]["balance"] == OPENING - 400 == await gw.balance()
    assert await gw.rows() == 3


async def test_a_call_with_no_actions_is_a_balance_request(gw: Gw) -> None:
    """A /play with no actions answers the balance and writes nothing."""
    status, body = await gw.post("/play", call(game_id=None))
    assert (status, body["balance"], body["transactions"]) == (200, OPENING, [])
    assert await gw.rows() == 0


async def test_finished_with_no_actions_ends_the_round_once(gw: Gw) -> None:
    """finished: true with no actions closes the round; a repeat replays it."""
    await gw.post("/play", call(bet("b1", 100)))
    first = await gw.post("/play", call(finished=True))
    again = await gw.post("/play", call(finished=True))
    assert first == again == (200, {"balance": OPENING - 100, "game_id": "r1", "transactions": []})
    assert await gw.rows() == 2


async def test_batch_stops_at_the_first_refusal(gw: Gw) -> None:
    """No action after a refused one is applied; the refusal names it and lists those applied before."""
    payload = call(bet("b1", 4000), bet("b2", 7000), win("w1", 50_000), finished=True)
    status, body = await gw.post("/play", payload)
    assert status == 412
    assert (body["code"], body["action_id"], body["balance"]) == (100, "b2", OPENING - 4000)
    assert [t["action_id"] for t in body["transactions"]] == ["b1"]
    assert await gw.balance() == OPENING - 4000
    kinds = await gw.pool.fetch("SELECT external_id, state FROM croupier.operations ORDER BY id")
    assert [(r["external_id"], r["state"]) for r in kinds] == [("b1", "applied"), ("b2", "rejected")]
    # The refusal is stored, so the same call again gives the same answer and applies nothing more.
    again_status, again = await gw.post("/play", payload)
    again.pop("message"), body.pop("message")
    assert (again_status, again) == (status, body)
    assert await gw.rows() == 2


async def test_a_call_continues_after_the_actions_already_applied(gw: Gw) -> None:
    """A call repeating applied actions (a retry of a batch cut short) replays them and applies the rest."""
    first = await gw.post("/play", call(bet("b1", 300)))
    status, body = await gw.post("/play", call(bet("b1", 300), win("w1", 900), finished=True))
    assert status == 200
    assert body["transactions"][0] == first[1]["transactions"][0]
    assert body["balance"] == OPENING - 300 + 900 == await gw.balance()


async def test_a_win_without_a_bet_is_paid(gw: Gw) -> None:
    """Free-spins wins come as plain wins in a round with no bet, and are paid."""
    status, body = await gw.post("/play", call(win("fs-w1", 250), game_id="fs-r1", finished=True))
    assert (status, body["balance"]) == (200, OPENING + 250)


async def test_jackpot_contribution_is_accepted_and_checked(gw: Gw) -> None:
    """A bet's jackpot_contribution is an integer in subunits; anything else is a bad request."""
    ok = await gw.post("/play", call(bet("b1", 100, jackpot_contribution=2)))
    bad = await gw.post("/play", call(bet("b2", 100, jackpot_contribution=0.5)))
    assert (ok[0], bad[0], bad[1]["code"]) == (200, 400, 400)
    assert await gw.rows() == 1


async def test_a_bet_into_a_finished_round_is_refused(gw: Gw) -> None:
    """After finished: true, a new bet in that round is refused with 120."""
    await gw.post("/play", call(bet("b1", 100), finished=True))
    status, body = await gw.post("/play", call(bet("b2", 100)))
    assert (status, body["code"], body.get("balance", OPENING - 100)) == (412, 120, OPENING - 100)
    assert await gw.balance() == OPENING - 100


async def test_player_refusals(gw: Gw) -> None:
    """Unknown player, ended session, bet limit, disabled player and wrong currency get their codes."""
    await gw.open("blocked", blocked=True)
    token = await gw.session()
    await gw.app[keys.SESSIONS].end(token)
    cases = [
        (call(bet("x1", 100), player_id="ghost"), 101),
        (call(bet("x2", 100), session_id=token), 101),
        (call(bet("x3", 50_001)), 106),
        (call(bet("x4", 100), player_id="blocked"), 110),
        (call(bet("x5", 100), currency="USD"), 154),
    ]
    for payload, code in cases:
        status, body = await gw.post("/play", payload)
        assert (status, body["code"]) == (412, code), payload
    assert await gw.balance() == OPENING


async def test_a_live_session_lets_the_bet_through(gw: Gw) -> None:
    """A bet naming a live session_id of the same player is applied."""
    token = await gw.session()
    status, body = await gw.post("/play", call(bet("b1", 100), session_id=token))
    assert (status, body["balance"]) == (200, OPENING - 100)


async def test_a_session_of_another_player_is_a_bad_request(gw: Gw) -> None:
    """A session_id that belongs to another player is refused as a bad request; nothing is written."""
    await gw.open("p2")
    token = await gw.session("p2")
    status, body = await gw.post("/play", call(bet("b1", 100), session_id=token))
    assert (status, body["code"]) == (400, 400)
    assert await gw.rows() == 0


async def test_a_reused_action_id_is_a_mismatch(gw: Gw) -> None:
    """An action_id used again with another amount or player answers 409; ids are not per player."""
    await gw.open("p2")
    await gw.post("/play", call(bet("b1", 100)))
    other_amount = await gw.post("/play", call(bet("b1", 200)))
    other_player = await gw.post("/play", call(bet("b1", 100), player_id="p2"))
    assert (other_amount[0], other_amount[1]["code"]) == (409, 409)
    assert "amount" in other_amount[1]["message"]
    assert "player" in other_player[1]["message"]
    assert await gw.balance("p2") == OPENING


# /rollback


async def test_a_rollback_refunds_a_bet_once(gw: Gw) -> None:
    """A rollback refunds the bet; the same rollback again answers the same transaction."""
    await gw.post("/play", call(bet("b1", 700)))
    payload = call(rollback("rb1", "b1"))
    first = await gw.post("/rollback", payload)
    again = await gw.post("/rollback", payload)
    assert first[0] == 200
    assert first == again
    assert [t["action_id"] for t in first[1]["transactions"]] == ["rb1"]
    assert first[1]["balance"] == OPENING == await gw.balance()


async def test_rollback_of_an_unseen_action_is_recorded_and_blocks_it(gw: Gw) -> None:
    """A rollback of an action never seen is answered as processed; that action arriving later is refused."""
    status, body = await gw.post("/rollback", call(rollback("rb1", "late-bet")))
    assert (status, body["balance"]) == (200, OPENING)
    assert body["transactions"][0]["action_id"] == "rb1"
    late = await gw.post("/play", call(bet("late-bet", 500)))
    assert (late[0], late[1]["code"]) == (412, 124)
    assert await gw.balance() == OPENING


async def test_a_rollback_after_a_win_is_refused(gw: Gw) -> None:
    """A bet whose round paid a win cannot be rolled back (123)."""
    await gw.post("/play", call(bet("b1", 500), win("w1", 800)))
    status, body = await gw.post("/rollback", call(rollback("rb1", "b1")))
    assert (status, body["code"]) == (412, 123)
    assert await gw.balance() == OPENING + 300


async def test_a_rollback_naming_a_win_moves_nothing(gw: Gw) -> None:
    """Rollbacks refund bets only: one naming a win is answered as processed and moves no money."""
    await gw.post("/play", call(bet("b1", 500), win("w1", 800)))
    status, body = await gw.post("/rollback", call(rollback("rb1", "w1")))
    assert (status, body["balance"]) == (200, OPENING + 300)
    assert await gw.balance() == OPENING + 300


async def test_a_win_after_a_rolled_back_bet_is_refused(gw: Gw) -> None:
    """A win for a round whose only bet was rolled back is refused (122)."""
    await gw.post("/play", call(bet("b1", 500)))
    await gw.post("/rollback", call(rollback("rb1", "b1")))
    status, body = await gw.post("/play", call(win("w1", 900)))
    assert (status, body["code"], body.get("balance", OPENING)) == (412, 122, OPENING)
    assert await gw.balance() == OPENING


# /freespins


async def test_freespins_report_is_acknowledged_and_checked(gw: Gw) -> None:
    """A free-spins report is answered 200 and moves nothing; a malformed one is a bad request."""
    ok = await gw.post("/freespins", {"issue_id": "fs-1", "status": "played", "total_amount": 1500})
    bad = await gw.post("/freespins", {"issue_id": "fs-1", "status": "played", "total_amount": "15.00"})
    assert ok == (200, {})
    assert (bad[0], bad[1]["code"]) == (400, 400)
    assert (await gw.rows(), await gw.balance()) == (0, OPENING)


# Input and signatures


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b"[]",
        orjson.dumps(call(bet("b1", 10.5))),
        orjson.dumps(call(bet("b1", 1e2))),
        orjson.dumps(call(bet("b1", "100"))),
        orjson.dumps(call(bet("b1", amount=True))),
        orjson.dumps(call(bet("b1", -1))),
        orjson.dumps(call(bet("b1", None))),
        (
            b'{"user_id": "op1:p1", "currency": "EUR", "game": "g", "game_id": "r1", "finished": false,'
            b' "actions": [{"action": "bet", "action_id": "b1", "amount": 100000000000000000000}]}'
        ),
        orjson.dumps(call(bet("b1", 100), bet("b1", 100))),
        orjson.dumps(call({"action": "refund", "action_id": "b1", "amount": 1})),
        orjson.dumps(call(bet(7, 100))),
        orjson.dumps(call(bet("b1", 100), game_id=None)),
        orjson.dumps(call(bet("b1", 100), finished="no")),
        orjson.dumps(call(bet("b1", 100), currency="XXXX")),
        orjson.dumps(call(bet("b1", 100), user_id="no-operator")),
        orjson.dumps(call(bet("b1", 100), user_id="nosuch:p1")),
        orjson.dumps(call(*[bet(f"b{i}", 1) for i in range(51)])),
    ],
)
async def test_malformed_calls_write_nothing(gw: Gw, payload: bytes) -> None:
    """Bad JSON, non-integer or negative amounts, bad ids, currency or user: 400 and nothing stored."""
    status, body = await gw.post("/play", payload)
    assert (status, body["code"]) == (400, 400)
    assert await gw.rows() == 0
    assert await gw.balance() == OPENING


async def test_malformed_rollbacks_write_nothing(gw: Gw) -> None:
    """A rollback with no actions, a bet action or no original_action_id is a bad request."""
    for payload in (
        call(),
        call(bet("b1", 100)),
        call({"action": "rollback", "action_id": "rb1"}),
    ):
        status, body = await gw.post("/rollback", payload)
        assert (status, body["code"]) == (400, 400), payload
    assert await gw.rows() == 0


async def test_signature_failures_write_nothing(gw: Gw) -> None:
    """A missing, wrong or malformed X-REQUEST-SIGN answers 403; the previous token still works."""
    payload = orjson.dumps(call(bet("b1", 100)))
    unsigned = await gw.post("/play", payload, key=None)
    wrong = await gw.post("/play", payload, key=b"not the token")
    resp = await gw.client.post("/providers/softswiss/play", data=payload, headers={SIGN_HEADER: "zz" * 32})
    assert (unsigned[0], unsigned[1]["code"], wrong[0], resp.status) == (403, 403, 403, 403)
    assert await gw.rows() == 0
    rotated = await gw.post("/play", payload, key=OLD_TOKEN)
    assert rotated[0] == 200


async def test_a_signature_over_other_bytes_is_refused(gw: Gw) -> None:
    """The signature covers the raw body: the same JSON re-serialised differently does not verify."""
    compact = orjson.dumps(call(bet("b1", 100)))
    spaced = orjson.dumps(call(bet("b1", 100)), option=orjson.OPT_INDENT_2)
    resp = await gw.client.post(
        "/providers/softswiss/play", data=spaced, headers={SIGN_HEADER: sign(TOKEN, compact)}
    )
    assert resp.status == 403


async def test_oversized_body(gw: Gw) -> None:
    """A body over 64 KiB is refused with 413 and code 400 before it is read whole."""
    status, body = await gw.post("/play", b"{" + b" " * (64 * 1024) + b"}")
    assert (status, body["code"]) == (413, 400)


# Seamless operator outcomes


class StubOperator:
    """An operator wallet that refuses wins for 'refuse', fails everything for 'down', else OK."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.app.router.add_post("/v1/{call}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one Operator Wallet API call."""
        data = await request.json()
        player = data["player_id"]
        if player == "down":
            return web.json_response({"status": "INTERNAL_ERROR"}, status=500)
        if player == "refuse" and request.match_info["call"] == "credit":
            # A definite refusal of the money (a refused key or body would be retried instead).
            return web.json_response({"status": "TRANSACTION_MISMATCH", "balance_minor": 0})
        return web.json_response({"status": "OK", "balance_minor": 5000})


async def test_seamless_operator_outcomes(
    aiohttp_client: Any, aiohttp_server: Any, fresh_db: str, fresh_redis: str
) -> None:
    """Operator refusal 125, a cancelled bet 126, a credit not yet delivered 500 then in progress 503."""
    server = await aiohttp_server(StubOperator().app)
    policy = OperatorPolicy(
        OPERATOR,
        debit_deadline_s=0.2,
        credit_deadline_s=0.2,
        answer_after_operator=True,
        recovery_after_s=3600,
    )
    operator = OperatorSettings(policy, "seamless", str(server.make_url("")).rstrip("/"), "k", b"s")
    gateway = await start(aiohttp_client, fresh_db, fresh_redis, operator)
    refused = await gateway.post("/play", call(win("w1", 100), player_id="refuse"))
    declined = await gateway.post("/play", call(bet("b1", 100), player_id="down"))
    undelivered = await gateway.post("/play", call(win("w2", 100), player_id="down", game_id="r2"))
    again = await gateway.post("/play", call(win("w2", 100), player_id="down", game_id="r2"))
    assert (refused[0], refused[1]["code"]) == (412, 125)
    assert (declined[0], declined[1]["code"]) == (412, 126)
    assert (undelivered[0], undelivered[1]["code"]) == (500, 500)
    assert (again[0], again[1]["code"]) == (503, 503)


# Launch and catalogue


def test_launch_url_real_and_demo() -> None:
    """Real play carries the session, user and currency; demo play carries neither."""
    adapter = SoftswissAdapter(CONFIG)
    launch = LaunchRequest(
        token="tok123",
        user_id="op1:p1",
        game_id="bgaming:ElvisFrog",
        currency="EUR",
        language="de",
        country="DE",
        device="mobile",
        lobby_url="https://casino.test/lobby",
        cashier_url="https://casino.test/cashier",
    )
    real = adapter.launch_url(launch)
    assert real.startswith("https://studio.example.test/play/bgaming%3AElvisFrog?")
    for part in (
        "session_id=tok123",
        "user_id=op1%3Ap1",
        "currency=EUR",
        "locale=de",
        "country=DE",
        "client_type=mobile",
        "casino_id=croupier-1",
        "return_url=https%3A%2F%2Fcasino.test%2Flobby",
        "deposit_url=https%3A%2F%2Fcasino.test%2Fcashier",
    ):
        assert part in real, part
    demo = adapter.launch_url(LaunchRequest("tok123", "op1:p1", "bgaming:ElvisFrog", "EUR", real=False))
    assert demo.startswith("https://studio.example.test/demo/bgaming%3AElvisFrog?")
    assert "tok123" not in demo
    assert "op1" not in demo


def test_catalogue_and_missing_token() -> None:
    """The catalogue comes from the options; an adapter with no auth token fails at start."""
    games = SoftswissAdapter(CONFIG).catalogue()
    assert [(g.provider, g.game_id, g.name, g.rtp_variants) for g in games] == [
        ("softswiss", "bgaming:ElvisFrog", "Elvis Frog", ("96", "94"))
    ]
    with pytest.raises(ValueError, match="auth token"):
        SoftswissAdapter(ProviderConfig("softswiss"))


# The simulator


def _player(token: str, player_id: str = "p1") -> SimPlayer:
    return SimPlayer(OPERATOR, player_id, "EUR", token)


async def test_simulator_plays_a_full_round(gw: Gw) -> None:
    """Bet, win, end of round and balance through the simulator, then a one-call demo spin."""
    player = _player(await gw.session())
    placed = await gw.sim.bet(player, 1000, "sim-r1", "sim-b1")
    paid = await gw.sim.win(player, 2500, "sim-r1", "sim-w1", "sim-b1")
    ended = await gw.sim.end_round(player, "sim-r1")
    balance = await gw.sim.balance(player)
    assert [a.outcome for a in (placed, paid, ended, balance)] == [Outcome.OK] * 4
    assert balance.balance_minor == OPENING + 1500 == await gw.balance()
    spin = await gw.sim.spin(player, 200, 0)
    assert (spin.outcome, spin.balance_minor) == (Outcome.OK, OPENING + 1300)
    assert len(spin.raw["transactions"]) == 2
    late = await gw.sim.bet(player, 100, "sim-r1", "sim-b2")
    assert (late.outcome, late.native_code, late.reasons) == (
        Outcome.REFUSED,
        "120",
        frozenset({Reason.ROUND_CLOSED}),
    )


async def test_simulator_reads_refusals_and_raw_sends(gw: Gw) -> None:
    """The simulator maps codes back to reasons, and send_raw / bet_body reach the right endpoints."""
    player = _player(await gw.session())
    poor = await gw.sim.bet(player, OPENING + 1, "r9", "big")
    assert (poor.outcome, poor.reasons, poor.balance_minor) == (
        Outcome.REFUSED,
        frozenset({Reason.INSUFFICIENT_FUNDS}),
        OPENING,
    )
    good = await gw.sim.send_raw("bet", gw.sim.bet_body(player, "150", "r9", "raw-1"))
    float_amount = await gw.sim.send_raw("bet", gw.sim.bet_body(player, "1.50", "r9", "raw-2"))
    unsigned = await gw.sim.send_raw("bet", gw.sim.bet_body(player, "150", "r9", "raw-3"), sign=False)
    assert (good.outcome, good.balance_minor) == (Outcome.OK, OPENING - 150)
    assert (float_amount.outcome, unsigned.outcome) == (Outcome.INVALID, Outcome.UNAUTHORIZED)
    with pytest.raises(NotImplementedError):
        await gw.sim.win(player, 100, "r9", "p-1", "", kind="promo")
    tombstone = await gw.sim.rollback(player, "never-sent", "r9", "rb-x", 100)
    assert tombstone.outcome is Outcome.OK


class FlakyFront:
    """Forwards calls to the gateway; queued faults answer 500 or drop the connection after forwarding."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults: list[str] = []
        self.paths: list[str] = []
        self.app = web.Application()
        self.app.router.add_post("/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Forward one call, then answer it faithfully or not, as the next fault says."""
        body = await request.read()
        self.paths.append(request.path)
        headers = {SIGN_HEADER: request.headers.get(SIGN_HEADER, ""), "Content-Type": "application/json"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.upstream + request.path, data=body, headers=headers) as resp,
        ):
            status, raw = resp.status, await resp.read()
        fault = self.faults.pop(0) if self.faults else None
        if fault == "drop":
            # The gateway has done the work; the provider never hears about it.
            assert request.transport is not None
            request.transport.abort()
            raise ConnectionResetError
        if fault == "500":
            return web.json_response({"code": 500, "message": "lost upstream"}, status=500)
        return web.Response(status=status, body=raw, content_type="application/json")


async def test_simulator_retry_rules(gw: Gw, aiohttp_server: Any) -> None:
    """A bet whose answer is lost is rolled back; a win whose answer is lost is retried to the same result."""
    front = FlakyFront(str(gw.client.make_url("/")))
    server = await aiohttp_server(front.app)
    sim = SoftswissSimulator(str(server.make_url("/")), gw.client.session, CONFIG, FAST)
    player = _player(await gw.session())

    front.faults = ["drop"]
    lost_bet = await sim.bet(player, 700, "rr1", "lost-bet", retry=True)
    assert lost_bet.outcome is Outcome.RETRYABLE
    assert front.paths[-1].endswith("/rollback")
    assert await gw.balance() == OPENING

    front.faults = ["500"]
    failed_bet = await sim.bet(player, 300, "rr2", "failed-bet", retry=True)
    assert failed_bet.outcome is Outcome.RETRYABLE
    assert await gw.balance() == OPENING

    await sim.bet(player, 100, "rr3", "ok-bet")
    front.faults = ["drop", "500"]
    paid = await sim.win(player, 900, "rr3", "lost-win", "ok-bet")
    assert (paid.outcome, paid.balance_minor) == (Outcome.OK, OPENING - 100 + 900)
    assert front.paths[-3:] == ["/providers/softswiss/play"] * 3
    entries = await gw.pool.fetchval(
        "SELECT count(*) FROM croupier.operations WHERE external_id = $1", "lost-win"
    )
    assert entries == 1
    front.faults = ["drop"]
    with pytest.raises(aiohttp.ClientError):
        await sim.bet(player, 100, "rr4", f"once-{uuid.uuid4().hex[:6]}")
