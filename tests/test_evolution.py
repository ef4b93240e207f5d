"""Evolution's One Wallet against a real gateway (ledger backend unless a test needs an operator).

Every native status is produced by at least one test here:
- OK: test_full_round_through_the_simulator and most others
- TEMPORARY_ERROR, OPERATION_IN_PROCESS: test_retryable_statuses_while_the_operator_is_down
- UNKNOWN_ERROR: test_an_error_outside_the_table_is_unknown_error
- INVALID_SID: test_check_and_balance_need_a_live_sid, test_debit_needs_a_live_sid_not_credit_or_cancel
- INVALID_TOKEN_ID: test_a_wrong_missing_or_repeated_auth_token_is_invalid_token_id
- INVALID_PARAMETER: test_malformed_bodies_are_invalid_parameter_and_write_nothing, amount tests
- INSUFFICIENT_FUNDS: test_insufficient_funds_answers_the_current_balance
- BET_ALREADY_EXIST: test_a_repeated_debit_is_ok_and_a_changed_one_is_bet_already_exist
- BET_ALREADY_SETTLED: test_a_bet_is_settled_once_by_credit_or_cancel
- BET_DOES_NOT_EXIST: test_credit_for_an_unknown_bet_is_bet_does_not_exist, test_cancel_before_its_debit
- FINAL_ERROR_ACTION_FAILED: test_cancel_before_its_debit, test_a_bet_over_the_limit_is_refused_for_good
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from proxy import FailingOperator, FaultProxy, Mode

from gateway import keys
from gateway.app import create_app
from gateway.settings import OperatorSettings, Settings
from providers import registry
from providers.base import LaunchRequest, ProviderConfig, Route
from providers.evolution import errors
from providers.evolution.adapter import EvolutionAdapter
from providers.evolution.simulator import EvolutionSimulator
from providers.identity import user_id
from providers.simulator import Outcome, SimPlayer, SimulatorOptions
from wallet.backends.ledger import open_account
from wallet.errors import Reason, WalletError
from wallet.policy import OperatorPolicy

OPERATOR = "op1"
CONFIG = EvolutionAdapter.sample_config()
TOKEN = CONFIG.options["auth_token"]
FAST = SimulatorOptions(timeout_s=5.0, retry_delay_s=0.01, max_retries=300)


def money(text: str) -> orjson.Fragment:
    """Return a JSON number written exactly as given."""
    return orjson.Fragment(text.encode())


@dataclass
class Evo:
    """A running gateway with the Evolution adapter, raw access and the simulator."""

    app: web.Application
    client: TestClient
    sim: EvolutionSimulator

    async def player(
        self,
        player_id: str = "p1",
        balance_minor: int = 100_00,
        currency: str = "EUR",
        *,
        account: bool = True,
        provider: str = "evolution",
    ) -> SimPlayer:
        """Open an account (unless told not to) and an Evolution session for it."""
        if account:
            async with self.app[keys.PG_POOL].acquire() as conn:
                await open_account(conn, OPERATOR, player_id, currency, balance_minor)
        session = await self.app[keys.SESSIONS].create(OPERATOR, player_id, currency, provider, "g")
        return SimPlayer(OPERATOR, player_id, currency, session.token)

    async def post(
        self, path: str, payload: dict[str, Any] | bytes, *, query: str | None = None
    ) -> tuple[int, dict[str, Any], bytes]:
        """Post a body to one endpoint with the authToken (or the query given) and decode the answer."""
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        qs = f"authToken={TOKEN}" if query is None else query
        async with self.client.post(f"/providers/evolution/{path}?{qs}", data=body) as resp:
            raw = await resp.read()
            return resp.status, orjson.loads(raw), raw

    async def status(self, path: str, payload: dict[str, Any] | bytes) -> str:
        """Return only the status of an answer (always HTTP 200)."""
        http, body, _ = await self.post(path, payload)
        assert http == 200
        return str(body["status"])

    async def balance(self, player: SimPlayer) -> int:
        """Return the player's balance on the ledger."""
        value = await self.app[keys.PG_POOL].fetchval(
            "SELECT balance_minor FROM croupier.accounts WHERE operator = $1 AND player_id = $2",
            OPERATOR,
            player.player_id,
        )
        return int(value)

    async def written(self) -> int:
        """Return how many operations are stored."""
        return int(await self.app[keys.PG_POOL].fetchval("SELECT count(*) FROM croupier.operations"))

    async def stored(self, kind: str, external_id: str) -> list[dict[str, Any]]:
        """Return the stored operations of a kind and external id (one per player)."""
        rows = await self.app[keys.PG_POOL].fetch(
            "SELECT * FROM croupier.operations"
            " WHERE provider = 'evolution' AND kind = $1 AND external_id = $2",
            kind,
            external_id,
        )
        return [dict(r) for r in rows]


def tx(
    player: SimPlayer,
    *,
    tx_id: str = "t1",
    ref: str = "r1",
    amount: str = "2.50",
    game: str = "g1",
    sid: str | None = None,
    uuid: str = "u-1",
) -> dict[str, Any]:
    """Return a debit, credit or cancel body."""
    return {
        "sid": sid or player.token,
        "userId": user_id(player.operator, player.player_id),
        "currency": player.currency,
        "game": {"id": game, "type": "blackjack", "details": {"table": {"id": "tbl1", "vid": None}}},
        "transaction": {"id": tx_id, "refId": ref, "amount": money(amount)},
        "uuid": uuid,
    }


def common(player: SimPlayer, *, sid: str | None = None, uuid: str = "u-1", **extra: Any) -> dict[str, Any]:
    """Return the fields every callback carries, plus others."""
    return {"sid": sid or player.token, "userId": user_id(OPERATOR, player.player_id), "uuid": uuid} | extra


def settings(db: str, redis: str, **operator: Any) -> Settings:
    """Return settings with op1 (bets up to 50.00 EUR) and the Evolution provider."""
    policy = OperatorPolicy(OPERATOR, max_bet_minor={"EUR": 50_00}, **operator.pop("policy", {}))
    return Settings(
        database_url=db,
        redis_url=redis,
        operators={OPERATOR: OperatorSettings(policy, **operator)},
        providers={"evolution": CONFIG},
        outbox_interval_s=3600.0,
    )


@pytest.fixture
async def evo(aiohttp_client, fresh_db: str, fresh_redis: str) -> Evo:
    """Return a gateway with the Evolution adapter on the ledger backend."""
    client = await aiohttp_client(create_app(settings(fresh_db, fresh_redis)))
    sim = EvolutionSimulator(str(client.make_url("/")), client.session, CONFIG, FAST)
    return Evo(client.app, client, sim)


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait until a condition holds (bounded), to order steps against a running task."""
    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


# Plug-in, launch and catalogue.


def test_the_plugin_loads_and_declares_ids_scoped_by_player() -> None:
    """The entry point loads a valid adapter that scopes ids by player and has the seven routes."""
    cls = registry.load("evolution")
    assert cls is EvolutionAdapter
    assert cls.capabilities.ids_scoped_by_player
    assert not cls.capabilities.rollback_after_win
    assert {r.path for r in cls.routes} == {
        "/check",
        "/sid",
        "/balance",
        "/debit",
        "/credit",
        "/cancel",
        "/promo_payout",
    }
    assert set(cls.error_codes) == set(Reason)
    assert cls.simulator() is EvolutionSimulator


def test_a_config_without_token_fails_at_start() -> None:
    """An adapter with neither auth_token nor a secret cannot start."""
    with pytest.raises(ValueError, match="authToken"):
        EvolutionAdapter(ProviderConfig("evolution"))


def test_launch_url_and_catalogue() -> None:
    """The launch URL carries the session, player, table, mode and URLs; the catalogue comes from options."""
    adapter = EvolutionAdapter(CONFIG)
    url = adapter.launch_url(
        LaunchRequest(
            token="tok 1",
            user_id="op1:p1",
            game_id="vctlz20yfnmp1ylr",
            currency="EUR",
            language="de",
            country="DE",
            jurisdiction="MT",
            device="mobile",
            real=False,
            lobby_url="https://casino.example/lobby",
            cashier_url="https://casino.example/cashier",
        )
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == CONFIG.options["launch_base_url"]
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {
        "casino": "kitcasino",
        "table": "vctlz20yfnmp1ylr",
        "sid": "tok 1",
        "userId": "op1:p1",
        "currency": "EUR",
        "language": "de",
        "country": "DE",
        "jurisdiction": "MT",
        "channel": "mobile",
        "mode": "demo",
        "lobbyUrl": "https://casino.example/lobby",
        "cashierUrl": "https://casino.example/cashier",
    }
    assert TOKEN not in url
    real = adapter.launch_url(LaunchRequest("t", "op1:p1", "x", "EUR"))
    assert "mode=real" in real
    assert "channel=desktop" in real
    games = adapter.catalogue()
    assert (games[0].provider, games[0].game_id, games[0].name, games[0].type, games[0].demo) == (
        "evolution",
        "vctlz20yfnmp1ylr",
        "Lightning Roulette",
        "live",
        False,
    )


# Authentication and sessions.


async def test_a_wrong_missing_or_repeated_auth_token_is_invalid_token_id(evo: Evo) -> None:
    """A bad authToken answers INVALID_TOKEN_ID (HTTP 200, uuid echoed) and writes nothing."""
    player = await evo.player()
    body = tx(player, uuid="u-auth")
    for query in ("authToken=wrong", "", f"authToken={TOKEN}&authToken={TOKEN}", "authToken=%C3%A9"):
        http, answer, _ = await evo.post("debit", body, query=query)
        assert (http, answer) == (200, {"status": "INVALID_TOKEN_ID", "uuid": "u-auth"})
    answer = await evo.sim.send_raw("bet", orjson.dumps(body), sign=False)
    assert (answer.outcome, answer.native_code) == (Outcome.UNAUTHORIZED, "INVALID_TOKEN_ID")
    assert await evo.written() == 0
    assert await evo.balance(player) == 100_00


async def test_check_answers_the_same_sid_and_echoes_the_uuid(evo: Evo) -> None:
    """Check answers OK with the same sid and the uuid, and no balance."""
    player = await evo.player()
    _, answer, _ = await evo.post("check", common(player, uuid="u-check", channel={"type": "P"}))
    assert answer == {"status": "OK", "sid": player.token, "uuid": "u-check"}
    checked = await evo.sim.check(player)
    assert checked.ok


async def test_sid_opens_a_new_session_for_the_same_player(evo: Evo) -> None:
    """Sid answers a fresh sid for the same player, currency and provider; both sids stay live."""
    player = await evo.player()
    answer = await evo.sim.new_sid(player)
    assert answer.ok
    fresh = answer.raw["sid"]
    assert fresh != player.token
    session = await evo.app[keys.SESSIONS].get(fresh)
    assert session is not None
    assert (session.operator, session.player_id, session.currency, session.provider) == (
        OPERATOR,
        "p1",
        "EUR",
        "evolution",
    )
    for sid in (player.token, fresh):
        _, body, _ = await evo.post("balance", common(player, sid=sid, currency="EUR", game=None))
        assert body["status"] == "OK"


async def test_a_new_sid_ends_when_the_session_it_continues_ends(evo: Evo) -> None:
    """A sid refresh keeps the session's end and mode, so it never stretches a session time limit."""
    player = await evo.player()
    store = evo.app[keys.SESSIONS]
    first = await store.create(OPERATOR, "p1", "EUR", "evolution", "g", 600, mode="real", reality_check_s=900)
    answer = await evo.sim.new_sid(replace(player, token=first.token))
    assert answer.ok
    fresh = await store.get(answer.raw["sid"])
    assert fresh is not None
    assert fresh.session_id != first.session_id
    assert abs(fresh.expires_at - first.expires_at) <= 1
    assert (fresh.mode, fresh.reality_check_s, fresh.game_id) == ("real", 900, "g")


async def test_check_and_balance_need_a_live_sid(evo: Evo) -> None:
    """Check, sid and balance with an unknown sid, or another provider's, answer INVALID_SID."""
    player = await evo.player()
    other = await evo.player("p2", provider="generic")
    for sid in ("no-such-sid", other.token):
        for path, extra in (("check", {}), ("sid", {}), ("balance", {"currency": "EUR", "game": None})):
            _, answer, _ = await evo.post(path, common(player, sid=sid, uuid="u-x", **extra))
            assert answer == {"status": "INVALID_SID", "uuid": "u-x"}
    await evo.app[keys.SESSIONS].end(player.token)
    answer = await evo.sim.balance(player)
    assert (answer.outcome, answer.native_code, answer.reasons) == (
        Outcome.REFUSED,
        "INVALID_SID",
        frozenset({Reason.SESSION_EXPIRED}),
    )


async def test_a_sid_of_another_user_or_currency_is_invalid_parameter(evo: Evo) -> None:
    """A live sid sent with another user id, a foreign user id or another currency is INVALID_PARAMETER."""
    player = await evo.player()
    other = await evo.player("p2")
    assert await evo.status("check", common(other, sid=player.token)) == "INVALID_PARAMETER"
    assert await evo.status("check", common(player) | {"userId": "fakeUserId_x1"}) == "INVALID_PARAMETER"
    assert await evo.status("debit", tx(other, sid=player.token)) == "INVALID_PARAMETER"
    assert await evo.status("balance", common(player, currency="USD")) == "INVALID_PARAMETER"
    assert await evo.written() == 0


async def test_a_player_the_operator_does_not_know_is_invalid_parameter(evo: Evo) -> None:
    """A live sid for a player without an account answers INVALID_PARAMETER on check."""
    player = await evo.player("ghost", account=False)
    assert await evo.status("check", common(player)) == "INVALID_PARAMETER"


# Balances and amounts on the wire.


@pytest.mark.parametrize(
    ("currency", "balance_minor", "text"),
    [
        ("EUR", 100_50, b'"balance":100.50,"bonus":0.00'),
        ("JPY", 1234, b'"balance":1234,"bonus":0'),
        ("BHD", 12_345, b'"balance":12.345,"bonus":0.000'),
    ],
)
async def test_balance_is_a_json_number_with_the_currency_digits(
    evo: Evo, currency: str, balance_minor: int, text: bytes
) -> None:
    """The balance is written with exactly the currency's decimals, never a float artefact."""
    player = await evo.player(currency=currency, balance_minor=balance_minor)
    _, answer, raw = await evo.post("balance", common(player, uuid="u-b", currency=currency, game=None))
    assert text in raw
    assert answer["uuid"] == "u-b"
    read = await evo.sim.balance(player)
    assert (read.outcome, read.balance_minor, read.replay) == (Outcome.OK, balance_minor, False)


@pytest.mark.parametrize(
    ("amount", "taken_minor"),
    [("2.5", 250), ("2.50", 250), ("3", 300), ("0.1", 10), ("1.000000", 100), ("25e-1", 250)],
)
async def test_amounts_are_read_exactly(evo: Evo, amount: str, taken_minor: int) -> None:
    """A JSON number amount is converted exactly, trailing zeros and exponents included."""
    player = await evo.player()
    assert await evo.status("debit", tx(player, amount=amount)) == "OK"
    assert await evo.balance(player) == 100_00 - taken_minor


@pytest.mark.parametrize(
    "amount",
    [
        "2.501",
        "-1",
        '"2.50"',
        "true",
        "null",
        "1e400",
        "NaN",
        "Infinity",
        "0.1000000000000000055511151231257827",
        "12345678901234567890123.45",
        "[1]",
    ],
)
async def test_bad_amounts_are_invalid_parameter_and_write_nothing(evo: Evo, amount: str) -> None:
    """Over-precise, negative, non-numeric, huge or non-finite amounts are refused; nothing is written."""
    player = await evo.player()
    body = evo.sim.bet_body(player, amount, "g1", "t1")
    answer = await evo.sim.send_raw("bet", body)
    assert (answer.outcome, answer.native_code) == (Outcome.INVALID, "INVALID_PARAMETER")
    if amount not in ("NaN", "Infinity"):  # no JSON at all: there is no uuid to echo
        assert answer.raw["uuid"]
    assert await evo.written() == 0
    assert await evo.balance(player) == 100_00


async def test_malformed_bodies_are_invalid_parameter_and_write_nothing(evo: Evo) -> None:
    """Bad JSON, wrong shapes, missing or mistyped fields all answer INVALID_PARAMETER and write nothing."""
    player = await evo.player()
    good = tx(player, uuid="u-m")
    broken: list[bytes | dict[str, Any]] = [
        b"not json",
        b"[1, 2]",
        b"\xff\xfe",
        b"[" * 5000,
        orjson.dumps(good)[:-1],
        {k: v for k, v in good.items() if k != "transaction"},
        good | {"transaction": {"id": "t1", "amount": money("1")}},
        good | {"transaction": {"id": 7, "refId": "r1", "amount": money("1")}},
        good | {"game": {"type": "x"}},
        good | {"game": "g1"},
        good | {"currency": "XXX1"},
        good | {"userId": "nocolon"},
        good | {"sid": ""},
        good | {"uuid": 5},
        good | {"transaction": {"id": "t1", "refId": "r" * 129, "amount": money("1")}},
    ]
    for body in broken:
        http, answer, _ = await evo.post("debit", body)
        assert (http, answer["status"]) == (200, "INVALID_PARAMETER"), body
    # Where the uuid could be read, the refusal echoes it.
    _, answer, _ = await evo.post("debit", good | {"currency": "XXX1"})
    assert answer == {"status": "INVALID_PARAMETER", "uuid": "u-m"}
    promo = common(player, currency="EUR", promoTransaction={"type": "CashReward", "id": "p", "amount": True})
    assert await evo.status("promo_payout", promo) == "INVALID_PARAMETER"
    rounds = promo | {"promoTransaction": {"type": "X", "id": "p", "amount": 1, "remainingRounds": -1}}
    assert await evo.status("promo_payout", rounds) == "INVALID_PARAMETER"
    assert await evo.written() == 0
    assert await evo.balance(player) == 100_00


async def test_an_oversized_body_is_invalid_parameter(evo: Evo) -> None:
    """A body over the limit answers INVALID_PARAMETER without being read to the end."""
    await evo.player()
    http, answer, _ = await evo.post("debit", b"{" + b" " * (70 * 1024) + b"}")
    assert (http, answer) == (200, {"status": "INVALID_PARAMETER"})
    assert await evo.written() == 0


# Bets: debit, credit, cancel.


async def test_full_round_through_the_simulator(evo: Evo) -> None:
    """The simulator checks the sid, bets, settles with a credit and reads exact balances back."""
    player = await evo.player()
    bet = await evo.sim.bet(player, 2_50, "game-1", "b1")
    assert (bet.outcome, bet.native_code, bet.balance_minor, bet.replay) == (Outcome.OK, "OK", 97_50, False)
    win = await evo.sim.win(player, 5_00, "game-1", "w1", "b1")
    assert (win.outcome, win.balance_minor, win.replay) == (Outcome.OK, 102_50, False)
    zero = await evo.sim.bet(player, 1_00, "game-2", "b2")
    assert zero.balance_minor == 101_50
    lost = await evo.sim.win(player, 0, "game-2", "w2", "b2")
    assert (lost.outcome, lost.balance_minor) == (Outcome.OK, 101_50)
    end = await evo.sim.end_round(player, "game-1")
    assert end.ok
    assert await evo.balance(player) == 101_50
    stored = await evo.stored("debit", "b1")
    assert [(s["round_id"], s["game_id"], s["scope"]) for s in stored] == [
        ("game-1/b1", evo.sim.table_id, "op1/p1")
    ]


async def test_a_repeated_debit_is_ok_and_a_changed_one_is_bet_already_exist(evo: Evo) -> None:
    """The same debit again is OK with retransmission and takes nothing; changed data is BET_ALREADY_EXIST."""
    player = await evo.player()
    _, first, _ = await evo.post("debit", tx(player, uuid="u-1"))
    assert first == {"status": "OK", "balance": 97.5, "bonus": 0, "uuid": "u-1"}
    _, again, raw = await evo.post("debit", tx(player, uuid="u-2"))
    assert again == {"status": "OK", "balance": 97.5, "bonus": 0, "uuid": "u-2", "retransmission": True}
    assert b'"balance":97.50' in raw
    for changed in (tx(player, amount="3.00"), tx(player, game="g2")):
        _, answer, _ = await evo.post("debit", changed)
        assert answer["status"] == "BET_ALREADY_EXIST"
    read = await evo.sim.send_raw("bet", orjson.dumps(tx(player, amount="3.00")))
    assert read.outcome is Outcome.MISMATCH
    assert await evo.balance(player) == 97_50


async def test_insufficient_funds_answers_the_current_balance(evo: Evo) -> None:
    """A debit over the balance is INSUFFICIENT_FUNDS with the balance unchanged beside it."""
    player = await evo.player(balance_minor=10_00)
    _, answer, _ = await evo.post("debit", tx(player, amount="20.00"))
    assert answer == {"status": "INSUFFICIENT_FUNDS", "balance": 10.0, "bonus": 0, "uuid": "u-1"}
    _, again, _ = await evo.post("debit", tx(player, amount="20.00"))
    assert (again["status"], again["retransmission"]) == ("INSUFFICIENT_FUNDS", True)
    assert await evo.balance(player) == 10_00


async def test_a_bet_over_the_limit_is_refused_for_good(evo: Evo) -> None:
    """A debit over the operator's bet limit answers FINAL_ERROR_ACTION_FAILED."""
    player = await evo.player()
    answer = await evo.sim.bet(player, 60_00, "g1", "big")
    assert (answer.outcome, answer.native_code) == (Outcome.REFUSED, "FINAL_ERROR_ACTION_FAILED")
    assert Reason.LIMIT_EXCEEDED in answer.reasons
    assert await evo.balance(player) == 100_00


async def test_debit_needs_a_live_sid_not_credit_or_cancel(evo: Evo) -> None:
    """After the sid expires a debit is INVALID_SID; the credit and cancel of earlier bets still apply."""
    player = await evo.player()
    assert await evo.status("debit", tx(player, ref="r1", tx_id="t1")) == "OK"
    assert await evo.status("debit", tx(player, ref="r2", tx_id="t2")) == "OK"
    await evo.app[keys.SESSIONS].end(player.token)
    _, refused, _ = await evo.post("debit", tx(player, ref="r3", tx_id="t3", uuid="u-3"))
    assert (refused["status"], refused["uuid"]) == ("INVALID_SID", "u-3")
    assert await evo.status("credit", tx(player, ref="r1", tx_id="c1", amount="10.00")) == "OK"
    assert await evo.status("cancel", tx(player, ref="r2", tx_id="t2")) == "OK"
    assert await evo.balance(player) == 100_00 - 2_50 + 10_00


async def test_credit_for_an_unknown_bet_is_bet_does_not_exist(evo: Evo) -> None:
    """A credit naming a refId never debited is BET_DOES_NOT_EXIST and pays nothing."""
    player = await evo.player()
    assert await evo.status("debit", tx(player, ref="r1")) == "OK"
    _, answer, _ = await evo.post("credit", tx(player, ref="nope", tx_id="c1", amount="5.00"))
    assert answer["status"] == "BET_DOES_NOT_EXIST"
    read = await evo.sim.win(player, 5_00, "g1", "c2", "nope2")
    assert (read.outcome, read.reasons) == (Outcome.REFUSED, frozenset({Reason.BET_NOT_FOUND}))
    assert await evo.balance(player) == 97_50


async def test_a_bet_is_settled_once_by_credit_or_cancel(evo: Evo) -> None:
    """A repeated credit pays nothing; a changed credit or a second settling is BET_ALREADY_SETTLED."""
    player = await evo.player()
    assert await evo.status("debit", tx(player, ref="r1", tx_id="t1")) == "OK"
    assert await evo.status("credit", tx(player, ref="r1", tx_id="c1", amount="5.00")) == "OK"
    _, again, _ = await evo.post("credit", tx(player, ref="r1", tx_id="c2", amount="5.00"))
    assert (again["status"], again["retransmission"]) == ("OK", True)
    assert (
        await evo.status("credit", tx(player, ref="r1", tx_id="c3", amount="7.00")) == "BET_ALREADY_SETTLED"
    )
    assert await evo.status("cancel", tx(player, ref="r1", tx_id="t1")) == "BET_ALREADY_SETTLED"
    assert await evo.balance(player) == 102_50

    assert await evo.status("debit", tx(player, ref="r2", tx_id="t2")) == "OK"
    assert await evo.status("cancel", tx(player, ref="r2", tx_id="t2")) == "OK"
    _, twice, _ = await evo.post("cancel", tx(player, ref="r2", tx_id="t2"))
    assert (twice["status"], twice["retransmission"]) == ("OK", True)
    late = await evo.sim.win(player, 5_00, "g1", "c4", "r2")
    assert (late.native_code, late.reasons) == (
        "BET_ALREADY_SETTLED",
        frozenset({Reason.ALREADY_SETTLED, Reason.BET_ROLLED_BACK}),
    )
    assert await evo.balance(player) == 102_50


async def test_two_bets_in_one_game_are_settled_separately(evo: Evo) -> None:
    """Two debits in one game: the first is credited and the second can still be cancelled."""
    player = await evo.player()
    assert await evo.status("debit", tx(player, ref="r1", tx_id="t1", amount="7.00")) == "OK"
    assert await evo.status("debit", tx(player, ref="r2", tx_id="t2", amount="5.00")) == "OK"
    assert await evo.status("credit", tx(player, ref="r1", tx_id="c1", amount="7.00")) == "OK"
    assert await evo.status("cancel", tx(player, ref="r2", tx_id="t2", amount="5.00")) == "OK"
    assert await evo.balance(player) == 100_00


async def test_rounds_end_when_their_bet_is_settled(evo: Evo) -> None:
    """With no end-of-round message, a bet's credit or cancel ends its round; an unsettled one stays open."""
    player = await evo.player()
    for ref in ("won", "lost", "cancelled", "open"):
        assert await evo.status("debit", tx(player, ref=ref, tx_id=f"d-{ref}")) == "OK"
    assert await evo.status("credit", tx(player, ref="won", tx_id="c-won", amount="5.00")) == "OK"
    assert await evo.status("credit", tx(player, ref="lost", tx_id="c-lost", amount="0")) == "OK"
    assert await evo.status("cancel", tx(player, ref="cancelled", tx_id="d-cancelled")) == "OK"
    rows = await evo.app[keys.PG_POOL].fetch(
        "SELECT round_id, state, closed_at IS NOT NULL AS has_end FROM croupier.rounds"
        " WHERE provider = 'evolution' ORDER BY opened_at, round_id"
    )
    states = {r["round_id"].rsplit("/", 1)[1]: (r["state"], r["has_end"]) for r in rows}
    assert states == {
        "won": ("closed", True),
        "lost": ("closed", True),
        "cancelled": ("closed", True),
        "open": ("open", False),
    }


async def test_cancel_before_its_debit(evo: Evo) -> None:
    """A cancel of a debit never seen is BET_DOES_NOT_EXIST; that debit arriving later is refused for good."""
    player = await evo.player()
    _, cancel, _ = await evo.post("cancel", tx(player, ref="r9", tx_id="t9", uuid="u-c"))
    assert cancel == {"status": "BET_DOES_NOT_EXIST", "balance": 100.0, "bonus": 0, "uuid": "u-c"}
    _, again, _ = await evo.post("cancel", tx(player, ref="r9", tx_id="t9"))
    assert (again["status"], again["retransmission"]) == ("BET_DOES_NOT_EXIST", True)
    _, debit, _ = await evo.post("debit", tx(player, ref="r9", tx_id="t9"))
    assert debit["status"] == "FINAL_ERROR_ACTION_FAILED"
    late = await evo.sim.bet(player, 2_50, "g1", "r9")
    assert late.reasons >= {Reason.TRANSACTION_ROLLED_BACK}
    # The simulator reads Evolution's convention for this case as a cancel that is done.
    read = await evo.sim.rollback(player, "r10", "g1", "unused", 1_00)
    assert (read.outcome, read.native_code, read.balance_minor) == (Outcome.OK, "BET_DOES_NOT_EXIST", 100_00)
    assert await evo.balance(player) == 100_00
    [tombstone] = await evo.stored("debit", "r9")
    assert tombstone["state"] == "tombstone"


async def test_two_players_at_one_table_share_transaction_ids(evo: Evo) -> None:
    """Two players sending the same transaction id and refId at one table both bet and both get paid."""
    alice = await evo.player("alice")
    bob = await evo.player("bob")
    for player in (alice, bob):
        assert await evo.status("debit", tx(player, tx_id="shared", ref="shared", amount="4.00")) == "OK"
    for player in (alice, bob):
        assert await evo.status("credit", tx(player, tx_id="win", ref="shared", amount="8.00")) == "OK"
    assert (await evo.balance(alice), await evo.balance(bob)) == (104_00, 104_00)
    scopes = sorted(s["scope"] for s in await evo.stored("debit", "shared"))
    assert scopes == ["op1/alice", "op1/bob"]


# Promo payouts.


@pytest.mark.parametrize(
    ("promo_type", "kind"),
    [("FreeRoundPlayableSpent", "freeround"), ("JackpotWin", "jackpot"), ("RtrMonetaryReward", "promo")],
)
async def test_promo_payout_pays_without_a_bet(evo: Evo, promo_type: str, kind: str) -> None:
    """A promo payout is a credit of its kind with no bet, accepted after the sid expired, once."""
    player = await evo.player()
    await evo.app[keys.SESSIONS].end(player.token)
    body = common(
        player,
        uuid="u-p",
        currency="EUR",
        game=None,
        promoTransaction={
            "type": promo_type,
            "id": "P1",
            "amount": money("1.556"),
            "voucherId": "v-1",
            "remainingRounds": 0,
        },
    )
    # 1.556 EUR has three decimals.
    assert await evo.status("promo_payout", body) == "INVALID_PARAMETER"
    body["promoTransaction"]["amount"] = money("1.55")
    _, first, _ = await evo.post("promo_payout", body)
    assert first == {"status": "OK", "balance": 101.55, "bonus": 0, "uuid": "u-p"}
    _, again, _ = await evo.post("promo_payout", body)
    assert again["retransmission"] is True
    [stored] = await evo.stored("credit", "promo:P1")
    assert (stored["credit_kind"], stored["amount_minor"]) == (kind, 155)
    assert await evo.balance(player) == 101_55


async def test_simulator_promo_kinds(evo: Evo) -> None:
    """The simulator pays promo, free-round and jackpot kinds by promo_payout and has no bonus kind."""
    player = await evo.player()
    for kind in ("promo", "freeround", "jackpot"):
        answer = await evo.sim.win(player, 1_00, f"round-{kind}", f"p-{kind}", "none", kind=kind)
        assert answer.ok, kind
    assert await evo.balance(player) == 103_00
    with pytest.raises(NotImplementedError, match="bonus"):
        await evo.sim.win(player, 1_00, "r", "p-b", "none", kind="bonus")


# Retries, faults and the status that no table entry yields.


async def test_retryable_statuses_while_the_operator_is_down(aiohttp_client, fresh_db, fresh_redis) -> None:
    """Operator down, answering after it: a payout is TEMPORARY_ERROR, then OPERATION_IN_PROCESS."""
    operator = FailingOperator(upstream_url=None)
    server = await aiohttp_client(operator.app)
    policy = {
        "answer_after_operator": True,
        "call_timeout_s": 0.2,
        "debit_deadline_s": 0.3,
        "credit_deadline_s": 0.3,
        "recovery_after_s": 60.0,
    }
    app = create_app(
        settings(
            fresh_db,
            fresh_redis,
            policy=policy,
            backend="seamless",
            wallet_url=str(server.make_url("/")).rstrip("/"),
            key_id="k",
            secret=b"s",
        )
    )
    client = await aiohttp_client(app)
    session = await app[keys.SESSIONS].create(OPERATOR, "p1", "EUR", "evolution", "g")
    player = SimPlayer(OPERATOR, "p1", "EUR", session.token)
    evo = Evo(app, client, EvolutionSimulator(str(client.make_url("/")), client.session, CONFIG, FAST))
    body = common(
        player, currency="EUR", game=None, promoTransaction={"type": "CashReward", "id": "P2", "amount": 1}
    )
    assert await evo.status("promo_payout", body) == "TEMPORARY_ERROR"
    _, answer, _ = await evo.post("promo_payout", body)
    assert answer == {"status": "OPERATION_IN_PROCESS", "uuid": "u-1"}
    read = evo.sim.read(await evo.sim.post("promo_payout", orjson.dumps(body)), "EUR")
    assert read.outcome is Outcome.RETRYABLE
    assert "/v1/credit" in operator.calls


async def test_an_error_outside_the_table_is_unknown_error(evo: Evo) -> None:
    """A core error the table does not name answers UNKNOWN_ERROR."""
    adapter = evo.app[keys.ADAPTERS]["evolution"]
    response = adapter.render_error(
        Route("POST", "/debit", "debit"), WalletError("surprise"), None, evo.app[keys.PROVIDER_CONTEXT]
    )
    assert isinstance(response, web.Response)
    assert response.status == 200
    assert orjson.loads(response.body) == {"status": "UNKNOWN_ERROR"}
    assert errors.native(WalletError("x"), "credit") is errors.UNKNOWN_ERROR


async def proxied(evo: Evo, http: aiohttp.ClientSession) -> tuple[FaultProxy, EvolutionSimulator]:
    """Return a fault proxy in front of the gateway and a simulator that goes through it."""
    assert evo.client.server.port is not None
    proxy = FaultProxy("127.0.0.1", evo.client.server.port)
    await proxy.start()
    return proxy, EvolutionSimulator(proxy.url, http, CONFIG, FAST)


async def test_simulator_cancels_a_debit_whose_answer_is_lost(evo: Evo) -> None:
    """A debit whose answer is lost is cancelled by the simulator until definite; the player is whole."""
    player = await evo.player()
    # A connection per request, so no pooled connection cut by the mode switch loses a request.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        proxy, sim = await proxied(evo, http)
        try:
            assert (await sim.check(player)).ok
            proxy.set_mode(Mode.DROP_REPLIES)
            task = asyncio.create_task(sim.bet(player, 2_50, "g1", "lost", retry=True))

            async def cancelled() -> bool:
                return bool(await evo.stored("rollback", "lost"))

            await until(cancelled)
            proxy.set_mode(Mode.PASS)
            answer = await task
        finally:
            await proxy.close()
    assert (answer.outcome, answer.native_code) == (Outcome.RETRYABLE, "TIMEOUT")
    assert await evo.balance(player) == 100_00
    [debit] = await evo.stored("debit", "lost")
    assert (debit["state"], debit["reversed"]) == ("applied", True)


async def test_simulator_retries_a_credit_until_definite(evo: Evo) -> None:
    """A credit whose answers are lost is retried with the same ids until OK; it pays once."""
    player = await evo.player()
    assert (await evo.sim.bet(player, 2_50, "g1", "b1")).ok
    # A connection per request, so no pooled connection cut by the mode switch loses a request.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        proxy, sim = await proxied(evo, http)
        try:
            proxy.set_mode(Mode.DROP_REPLIES)
            task = asyncio.create_task(sim.win(player, 6_00, "g1", "w1", "b1"))

            async def credited() -> bool:
                return bool(await evo.stored("credit", "b1"))

            await until(credited)
            proxy.set_mode(Mode.PASS)
            answer = await task
        finally:
            await proxy.close()
    assert (answer.outcome, answer.replay, answer.balance_minor) == (Outcome.OK, True, 103_50)
    assert await evo.balance(player) == 103_50
