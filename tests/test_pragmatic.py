"""Pragmatic Play's seamless wallet through a real gateway (ledger backend, real PostgreSQL and Redis).

Native codes and a test that produces each:
- 0 everywhere; 1, 3, 4, 6, 8, 50 and 120 `test_bet_refusals_map_to_native_codes`;
- 1 also `test_adjustment_is_signed`; 2 `test_balance_with_and_without_token`;
- 3 and 120 also `test_refund_rules`; 4 also `test_authenticate_with_an_unknown_token_is_4`;
- 5 `test_wrong_or_missing_hash_is_5_and_writes_nothing`; 7 `test_malformed_bets_are_7_and_write_nothing`;
- 100 and 130 `test_storage_failure_is_100_and_130_on_end_round`.
210 (reality check) and 310 (outside betLimits) are never produced: Croupier has no reality checks
and sends no betLimits.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
import pytest
from aiohttp import web

from gateway import keys
from gateway.app import create_app
from gateway.settings import OperatorSettings, Settings
from providers import registry
from providers.base import LaunchRequest, ProviderConfig
from providers.pragmatic import errors, players, signing
from providers.pragmatic.adapter import PragmaticAdapter
from providers.pragmatic.simulator import PragmaticSimulator
from providers.simulator import Outcome, SimPlayer, SimulatorOptions
from wallet.backends.ledger import open_account
from wallet.errors import AuthenticationError, InProgressError, Reason, UnavailableError
from wallet.operations import Kind, Operation
from wallet.policy import OperatorPolicy

OPERATOR = "op1"
SECRET = b"pragmatic secret key"
GAME = "vs20olympgate"
PROVIDER_ID = "PragmaticPlay"
LIMIT_MINOR = 500_00


def make_config(**options: Any) -> ProviderConfig:
    """Return a Pragmatic configuration; a second key proves only the first one signs."""
    base: dict[str, Any] = {
        "provider_id": PROVIDER_ID,
        "allowed_ips": ["127.0.0.0/8", "::1"],
        "secure_login": "croupier_test",
        "launch_base_url": "https://api.example.test/",
        "games": [{"id": GAME, "name": "Gates of Olympus"}, {"id": "vs10bbbonanza", "demo": False}],
        "currencies": {"BTC": 8},
    }
    base.update(options)
    return ProviderConfig("pragmatic", {"pp-1": SECRET, "pp-old": b"retired key"}, base)


@dataclass
class Env:
    """A running gateway with the Pragmatic adapter, a simulator and direct calls."""

    app: web.Application
    client: Any
    sim: PragmaticSimulator
    config: ProviderConfig

    async def player(
        self,
        player_id: str = "p1",
        balance_minor: int = 100_00,
        currency: str = "EUR",
        *,
        blocked: bool = False,
        login: bool = True,
    ) -> SimPlayer:
        """Open a funded account and a Pragmatic session, authenticated unless told otherwise."""
        async with self.app[keys.PG_POOL].acquire() as conn:
            await open_account(conn, OPERATOR, player_id, currency, balance_minor, blocked=blocked)
        session = await self.app[keys.SESSIONS].create(OPERATOR, player_id, currency, "pragmatic", GAME)
        player = SimPlayer(OPERATOR, player_id, currency, session.token)
        if login:
            await self.login(player)
        return player

    async def login(self, player: SimPlayer) -> None:
        """Authenticate the player's token, as Pragmatic does when the game opens."""
        _, answer = await self.post("/authenticate.html", {"providerId": PROVIDER_ID, "token": player.token})
        assert answer["error"] == 0, answer

    async def post(
        self, path: str, params: dict[str, str], *, sign: bool = True, headers: dict[str, str] | None = None
    ) -> tuple[bytes, dict[str, Any]]:
        """Post a form call and return the raw answer and its JSON read with exact decimals."""
        body = urlencode(signing.sign(params, SECRET) if sign else params).encode()
        return await self.post_bytes(path, body, headers)

    async def post_bytes(
        self, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[bytes, dict[str, Any]]:
        """Post exact bytes and return the raw answer and its JSON."""
        sent = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        async with self.client.post(f"/providers/pragmatic{path}", data=body, headers=sent) as resp:
            assert resp.status == 200
            raw = await resp.read()
        return raw, json.loads(raw, parse_float=Decimal)

    async def money(self, player_id: str = "p1", currency: str = "EUR") -> int:
        """Return the balance the ledger backend holds."""
        value = await self.app[keys.PG_POOL].fetchval(
            "SELECT balance_minor FROM croupier.accounts"
            " WHERE operator = $1 AND player_id = $2 AND currency = $3",
            OPERATOR,
            player_id,
            currency,
        )
        return int(value)

    async def written(self) -> int:
        """Return how many operations are stored."""
        return int(await self.app[keys.PG_POOL].fetchval("SELECT count(*) FROM croupier.operations"))

    async def stored(self, kind: str, external_id: str) -> Any:
        """Return one stored operation."""
        return await self.app[keys.PG_POOL].fetchrow(
            "SELECT * FROM croupier.operations"
            " WHERE provider = 'pragmatic' AND kind = $1 AND external_id = $2",
            kind,
            external_id,
        )


def call(player: SimPlayer, **fields: str) -> dict[str, str]:
    """Return a call's parameters for a player."""
    return {"providerId": PROVIDER_ID, "userId": f"{OPERATOR}:{player.player_id}", **fields}


def bet_params(
    player: SimPlayer, reference: str, amount: str, round_id: str = "r1", **extra: str
) -> dict[str, str]:
    """Return the parameters of a bet with the player's token."""
    fields = {"gameId": GAME, "roundId": round_id, "amount": amount, "reference": reference}
    fields |= {"timestamp": "1700000000000", "roundDetails": "spin", "token": player.token, **extra}
    return call(player, **fields)


def result_params(
    player: SimPlayer, reference: str, amount: str, round_id: str = "r1", **extra: str
) -> dict[str, str]:
    """Return the parameters of a result.html call."""
    fields = {"gameId": GAME, "roundId": round_id, "amount": amount, "reference": reference}
    return call(player, **fields, timestamp="1700000000001", roundDetails="spin", **extra)


@pytest.fixture
def start(aiohttp_client, fresh_db, fresh_redis):
    """Return a factory for a gateway with the Pragmatic adapter under the given options."""

    async def factory(sim_url: str | None = None, sim_timeout_s: float = 5.0, **options: Any) -> Env:
        config = make_config(**options)
        policy = OperatorPolicy(OPERATOR, max_bet_minor={"EUR": LIMIT_MINOR})
        settings = Settings(
            database_url=fresh_db,
            redis_url=fresh_redis,
            currencies={"BTC": 8},
            operators={OPERATOR: OperatorSettings(policy)},
            providers={"pragmatic": config},
            outbox_interval_s=3600.0,
        )
        app = create_app(settings)
        client = await aiohttp_client(app)
        url = sim_url or str(client.make_url("/")).rstrip("/")
        sim_options = SimulatorOptions(timeout_s=sim_timeout_s, retry_delay_s=0.01, max_retries=20)
        sim = PragmaticSimulator(url, client.session, config, sim_options)
        return Env(app, client, sim, config)

    return factory


@pytest.fixture
async def env(start) -> Env:
    """Return a gateway with the default Pragmatic configuration."""
    return await start()


# The plug-in and its authentication.


def test_plugin_is_registered_and_complete() -> None:
    """The entry point loads the adapter, whose error table answers every core reason."""
    assert registry.load("pragmatic") is PragmaticAdapter
    assert set(PragmaticAdapter.error_codes) == set(Reason)
    assert PragmaticAdapter.simulator() is PragmaticSimulator
    caps = PragmaticAdapter.capabilities
    assert not caps.wins_without_bets
    assert not caps.rollback_after_win
    assert not caps.rollback_of_credit
    assert not caps.ids_scoped_by_player
    assert errors.reasons(120) >= {Reason.ALREADY_SETTLED, Reason.BET_NOT_FOUND}


def test_hash_is_md5_of_sorted_parameters_then_secret() -> None:
    """The hash is MD5 over every parameter but hash, sorted by name, joined k=v by &, plus the secret."""
    params = {"userId": "op1:p1", "amount": "1.50", "hash": "ignored", "Zeta": "z"}
    expected = hashlib.md5(b"Zeta=z&amount=1.50&userId=op1:p1" + SECRET).hexdigest()  # noqa: S324
    assert signing.digest(params, SECRET) == expected
    assert signing.sign({"a": "1"}, SECRET)["hash"] == hashlib.md5(b"a=1" + SECRET).hexdigest()  # noqa: S324
    signing.verify({**params, "hash": expected.upper()}, SECRET)


def test_allowlist_matches_networks_and_mapped_addresses() -> None:
    """Addresses match their networks, an IPv4-mapped IPv6 peer its IPv4 address; others are refused."""
    allowlist = signing.Allowlist(signing.networks(["127.0.0.1", "10.0.0.0/8"]))
    allowlist.check("10.20.30.40", None)
    allowlist.check("::ffff:127.0.0.1", None)
    for refused in ("::1", "192.168.1.1", None, "not-an-ip"):
        with pytest.raises(AuthenticationError):
            allowlist.check(refused, "10.0.0.1")


def test_bad_allowlists_fail_at_start() -> None:
    """A malformed allowlist is refused when the adapter is built, not on the first call."""
    with pytest.raises(ValueError, match="does not appear to be"):
        PragmaticAdapter(make_config(allowed_ips=["not-an-address"]))
    with pytest.raises(TypeError, match="must be a list"):
        PragmaticAdapter(make_config(allowed_ips="10.0.0.0/8"))
    with pytest.raises(ValueError, match="secret key"):
        PragmaticAdapter(ProviderConfig("pragmatic", {}, {}))


async def test_wrong_or_missing_hash_is_5_and_writes_nothing(env: Env) -> None:
    """A bad hash, no hash, or a hash made with the second key is error 5; nothing is written."""
    player = await env.player()
    params = bet_params(player, "b1", "1.00")
    _, bad = await env.post("/bet.html", {**params, "hash": "0" * 32}, sign=False)
    _, missing = await env.post("/bet.html", params, sign=False)
    other = urlencode(signing.sign(params, b"retired key")).encode()
    _, second_key = await env.post_bytes("/bet.html", other)
    assert [bad["error"], missing["error"], second_key["error"]] == [5, 5, 5]
    assert bad["description"] == "Invalid hash code"
    assert await env.written() == 0
    assert await env.money() == 100_00


async def test_provider_id_must_be_the_configured_one(env: Env) -> None:
    """A correctly hashed call naming another providerId is refused with 5."""
    player = await env.player()
    _, answer = await env.post("/bet.html", {**bet_params(player, "b1", "1.00"), "providerId": "Other"})
    assert answer["error"] == 5
    assert await env.written() == 0


async def test_address_allowlist(start) -> None:
    """Callers outside the allowlist get 5; X-Forwarded-For counts only when trusted, right-most entry."""
    closed = await start(allowed_ips=["10.0.0.0/8"])
    player = await closed.player(login=False)
    spoofed = {"X-Forwarded-For": "10.1.2.3"}
    _, answer = await closed.post("/bet.html", bet_params(player, "b1", "1.00"), headers=spoofed)
    assert answer["error"] == 5
    assert await closed.written() == 0


async def test_trusted_forwarded_for(start) -> None:
    """Behind a trusted proxy the address it appended (right-most) is the one checked."""
    env = await start(allowed_ips=["203.0.113.0/24"], trust_forwarded_for=True)
    player = await env.player(login=False)
    params = call(player, token=player.token)
    _, allowed = await env.post(
        "/balance.html", params, headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}
    )
    _, refused = await env.post(
        "/balance.html", params, headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.1"}
    )
    _, absent = await env.post("/balance.html", params)
    assert (allowed["error"], refused["error"], absent["error"]) == (0, 5, 5)


async def test_empty_allowlist_allows_every_address(start) -> None:
    """With no allowed_ips every caller passes (development only)."""
    env = await start(allowed_ips=[])
    player = await env.player()
    _, answer = await env.post("/balance.html", call(player, token=player.token))
    assert answer["error"] == 0


# authenticate.html and balance.html


async def test_authenticate_answers_the_player_and_its_token(env: Env) -> None:
    """Authenticate answers userId, currency, cash and bonus as exact numbers, and the session token."""
    player = await env.player(balance_minor=99_50)
    raw, answer = await env.post(
        "/authenticate.html", {"providerId": PROVIDER_ID, "token": player.token, "gameId": GAME}
    )
    assert answer == {
        "userId": "op1:p1",
        "currency": "EUR",
        "cash": Decimal("99.50"),
        "bonus": Decimal("0.00"),
        "token": player.token,
        "error": 0,
        "description": "Success",
    }
    assert b'"cash":99.50,"bonus":0.00' in raw


async def test_authenticate_with_an_unknown_token_is_4(env: Env) -> None:
    """An unknown token, or one from another provider's session, is 4; a game not offered is 8."""
    _, unknown = await env.post("/authenticate.html", {"providerId": PROVIDER_ID, "token": "nope"})
    other = await env.app[keys.SESSIONS].create(OPERATOR, "p1", "EUR", "generic", GAME)
    _, foreign = await env.post("/authenticate.html", {"providerId": PROVIDER_ID, "token": other.token})
    _, disabled = await env.post(
        "/authenticate.html", {"providerId": PROVIDER_ID, "token": "x", "gameId": "gone"}
    )
    assert (unknown["error"], foreign["error"], disabled["error"]) == (4, 4, 8)


async def test_balance_with_and_without_token(env: Env) -> None:
    """Balance works with a token, or without one after authentication; an unknown user is 2."""
    player = await env.player(balance_minor=12_34, login=False)
    _, before = await env.post("/balance.html", call(player))
    _, with_token = await env.post("/balance.html", call(player, token=player.token))
    await env.login(player)
    _, after = await env.post("/balance.html", call(player))
    _, stranger = await env.post("/balance.html", {"providerId": PROVIDER_ID, "userId": "not-ours"})
    assert before["error"] == 2
    assert with_token == {
        "currency": "EUR",
        "cash": Decimal("12.34"),
        "bonus": Decimal("0.00"),
        "error": 0,
        "description": "Success",
    }
    assert after["cash"] == Decimal("12.34")
    assert stranger["error"] == 2


# bet.html


async def test_bet_answers_croupier_transaction_id_and_replays(env: Env) -> None:
    """A bet answers Croupier's transaction id; its reference again gets that id and the current balance."""
    player = await env.player()
    _, first = await env.post("/bet.html", bet_params(player, "b1", "1.25"))
    expected = Operation(Kind.DEBIT, "pragmatic", OPERATOR, "p1", "EUR", external_id="b1").transaction_id
    assert first["transactionId"] == str(expected)
    assert (first["cash"], first["usedPromo"], first["currency"]) == (
        Decimal("98.75"),
        Decimal("0.00"),
        "EUR",
    )
    await env.post("/bet.html", bet_params(player, "b2", "0.75", round_id="r2"))
    _, again = await env.post("/bet.html", bet_params(player, "b1", "1.25"))
    assert (again["error"], again["transactionId"], again["cash"]) == (0, str(expected), Decimal("98.00"))
    assert await env.money() == 98_00


async def test_bet_refusals_map_to_native_codes(env: Env) -> None:
    """Funds 1, frozen 6, expired token 4, limit 50, unknown game 8, ended round 3, changed repeat 120."""
    player = await env.player(balance_minor=600_00)
    frozen = await env.player("p2", blocked=True)
    poor = await env.player("p3", balance_minor=1_00)
    _, funds = await env.post("/bet.html", bet_params(poor, "b1", "2.00"))
    _, blocked = await env.post("/bet.html", bet_params(frozen, "b2", "1.00"))
    _, limit = await env.post("/bet.html", bet_params(player, "b3", "500.01"))
    _, game = await env.post("/bet.html", {**bet_params(player, "b4", "1.00"), "gameId": "vs99unknown"})
    assert (funds["error"], funds["cash"]) == (1, Decimal("1.00"))
    assert (blocked["error"], limit["error"], game["error"]) == (6, 50, 8)
    await env.post("/bet.html", bet_params(player, "b5", "1.00", round_id="r9"))
    _, changed = await env.post("/bet.html", bet_params(player, "b5", "2.00", round_id="r9"))
    assert (changed["error"], changed["field"]) == (120, "amount")
    _, ended = await env.post("/endRound.html", call(player, gameId=GAME, roundId="r9"))
    _, late = await env.post("/bet.html", bet_params(player, "b6", "1.00", round_id="r9"))
    assert (ended["error"], late["error"]) == (0, 3)
    await env.app[keys.SESSIONS].end(player.token)
    _, expired = await env.post("/bet.html", bet_params(player, "b7", "1.00"))
    assert expired["error"] == 4
    assert await env.money() == 599_00


async def test_bet_without_token_needs_authentication_or_the_option(start) -> None:
    """A bet without a token passes after authentication; with require_token_on_bet it is 4."""
    env = await start()
    player = await env.player()
    params = bet_params(player, "b1", "1.00")
    del params["token"]
    _, answer = await env.post("/bet.html", params)
    assert answer["error"] == 0
    strict = await start(require_token_on_bet=True)
    other = await strict.player("p2")
    no_token = bet_params(other, "b2", "1.00")
    del no_token["token"]
    _, refused = await strict.post("/bet.html", no_token)
    assert refused["error"] == 4


@pytest.mark.parametrize("amount", ["1.001", "-1.00", "abc", "", "1,50", "NaN", "1e400", " 1.00", "0x10"])
async def test_malformed_bets_are_7_and_write_nothing(env: Env, amount: str) -> None:
    """Amounts that are not exact decimals for the currency are error 7; nothing is written."""
    player = await env.player()
    _, answer = await env.post("/bet.html", bet_params(player, "b1", amount))
    assert answer["error"] == 7
    assert answer["description"].startswith("Bad parameters: amount")
    assert await env.written() == 0


async def test_malformed_bodies_are_7_and_write_nothing(env: Env) -> None:
    """Missing or repeated parameters, bad timestamps, non-form and oversized bodies and NUL ids are 7."""
    player = await env.player()
    params = bet_params(player, "b1", "1.00")
    missing = {k: v for k, v in params.items() if k != "reference"}
    _, no_reference = await env.post("/bet.html", missing)
    _, bad_time = await env.post("/bet.html", {**params, "timestamp": "yesterday"})
    twice = urlencode(signing.sign(params, SECRET)).encode() + b"&amount=2.00"
    _, repeated = await env.post_bytes("/bet.html", twice)
    _, not_form = await env.post_bytes("/bet.html", b'{"amount": 1}')
    _, not_utf8 = await env.post_bytes("/bet.html", b"userId=\xff")
    _, oversized = await env.post_bytes("/bet.html", b"a=" + b"1" * 70_000)
    # A NUL, which PostgreSQL text cannot hold, is the caller's mistake (7), not our fault (100).
    _, nul_reference = await env.post("/bet.html", {**params, "reference": "b\x001"})
    _, nul_round = await env.post("/bet.html", {**params, "roundId": "r\x00"})
    answers = (no_reference, bad_time, repeated, not_form, not_utf8, oversized, nul_reference, nul_round)
    assert [a["error"] for a in answers] == [7] * 8
    assert await env.written() == 0


async def test_amounts_are_exact_json_numbers_with_the_currency_places(env: Env) -> None:
    """Cash is a JSON number with exactly the currency's decimals: 8 for BTC, never a float artefact."""
    player = await env.player("sat", balance_minor=100, currency="BTC")
    raw, answer = await env.post("/bet.html", bet_params(player, "b1", "0.00000001"))
    assert b'"cash":0.00000099,"bonus":0.00000000' in raw
    assert answer["currency"] == "BTC"
    _, over = await env.post("/bet.html", bet_params(player, "b2", "0.000000001"))
    assert over["error"] == 7
    eur = await env.player()
    raw, _ = await env.post("/bet.html", bet_params(eur, "b3", "0.1"))
    _, win = await env.post("/result.html", result_params(eur, "w3", "0.2"))
    assert b'"cash":99.90' in raw
    assert win["cash"] == Decimal("100.10")


# result.html, bonusWin.html, jackpotWin.html, promoWin.html


async def test_result_pays_a_win_once_and_accepts_zero(env: Env) -> None:
    """A result pays its win once however often it is sent; a zero win is accepted."""
    player = await env.player()
    await env.post("/bet.html", bet_params(player, "b1", "1.00"))
    _, win = await env.post("/result.html", result_params(player, "w1", "2.50"))
    _, again = await env.post("/result.html", result_params(player, "w1", "2.50"))
    assert (win["error"], again["error"], again["transactionId"]) == (0, 0, win["transactionId"])
    await env.post("/bet.html", bet_params(player, "b2", "1.00", round_id="r2"))
    _, zero = await env.post("/result.html", result_params(player, "w2", "0", round_id="r2"))
    assert (zero["error"], zero["cash"]) == (0, Decimal("100.50"))
    _, no_bet = await env.post("/result.html", result_params(player, "w3", "1.00", round_id="r3"))
    assert no_bet["error"] == 120
    assert await env.money() == 100_50


async def test_prize_drop_is_a_separate_promo_credit(env: Env) -> None:
    """A promoWinAmount on a result is its own promo credit keyed by promoWinReference, paid once."""
    player = await env.player()
    await env.post("/bet.html", bet_params(player, "b1", "1.00"))
    params = result_params(
        player,
        "w1",
        "2.00",
        promoWinAmount="5.00",
        promoWinReference="pd-1",
        promoCampaignID="7",
        promoCampaignType="R",
    )
    _, first = await env.post("/result.html", params)
    _, again = await env.post("/result.html", params)
    assert (first["error"], first["cash"], again["cash"]) == (0, Decimal("106.00"), Decimal("106.00"))
    win, promo = await env.stored("credit", "w1"), await env.stored("credit", "pd-1")
    assert (win["credit_kind"], win["amount_minor"]) == ("win", 2_00)
    assert (promo["credit_kind"], promo["amount_minor"], promo["round_id"]) == ("promo", 5_00, "r1")
    assert first["transactionId"] == str(win["transaction_id"])
    _, nameless = await env.post("/result.html", result_params(player, "w2", "0", promoWinAmount="1.00"))
    assert nameless["error"] == 7


async def test_free_round_result_needs_no_bet(env: Env) -> None:
    """A result with a bonusCode is a free-round credit, paid without a bet in its round."""
    player = await env.player()
    _, answer = await env.post(
        "/result.html", result_params(player, "fr1", "3.00", round_id="fr", bonusCode="frb-9")
    )
    assert answer["error"] == 0
    assert (await env.stored("credit", "fr1"))["credit_kind"] == "freeround"
    assert await env.money() == 103_00


async def test_bonus_win_is_a_bonus_credit_in_its_own_round(env: Env) -> None:
    """A bonusWin credits kind bonus in the round bonusWin:<reference>, even without a roundId."""
    player = await env.player()
    params = call(player, amount="4.00", reference="bw1", timestamp="1", bonusCode="frb-1")
    _, answer = await env.post("/bonusWin.html", params)
    row = await env.stored("credit", "bw1")
    assert (answer["error"], answer["cash"], answer["transactionId"]) == (
        0,
        Decimal("104.00"),
        str(row["transaction_id"]),
    )
    assert (row["credit_kind"], row["round_id"]) == ("bonus", "bonusWin:bw1")


async def test_bonus_win_can_be_acknowledged_only(start) -> None:
    """With bonus_win_credits off, bonusWin answers success and moves no money."""
    env = await start(bonus_win_credits=False)
    player = await env.player()
    _, answer = await env.post(
        "/bonusWin.html", call(player, amount="4.00", reference="bw1", timestamp="1", bonusCode="b")
    )
    assert (answer["error"], answer["cash"]) == (0, Decimal("100.00"))
    assert uuid.UUID(answer["transactionId"])
    assert await env.written() == 0


async def test_jackpot_win_is_a_jackpot_credit(env: Env) -> None:
    """A jackpotWin credits kind jackpot in its round."""
    player = await env.player()
    await env.post("/bet.html", bet_params(player, "b1", "1.00"))
    params = call(
        player, gameId=GAME, roundId="r1", jackpotId="j1", amount="50.00", reference="jp1", timestamp="1"
    )
    _, answer = await env.post("/jackpotWin.html", params)
    assert (answer["error"], answer["cash"]) == (0, Decimal("149.00"))
    assert (await env.stored("credit", "jp1"))["credit_kind"] == "jackpot"


async def test_promo_win_must_be_in_the_players_currency(env: Env) -> None:
    """A promoWin pays kind promo in its own round; another currency than the player's is 7."""
    player = await env.player()
    fields = {"campaignId": "5", "campaignType": "T", "amount": "7.00", "timestamp": "1"}
    _, wrong = await env.post("/promoWin.html", call(player, **fields, currency="USD", reference="pw0"))
    _, unknown = await env.post("/promoWin.html", call(player, **fields, currency="ZZZ", reference="pw0"))
    _, paid = await env.post("/promoWin.html", call(player, **fields, currency="EUR", reference="pw1"))
    assert (wrong["error"], unknown["error"], paid["error"]) == (7, 7, 0)
    row = await env.stored("credit", "pw1")
    assert (row["credit_kind"], row["round_id"], await env.money()) == ("promo", "promoWin:pw1", 107_00)


async def test_owed_money_for_a_user_never_authenticated_is_2(env: Env) -> None:
    """Without a token or an earlier authentication the currency is unknown: 2, nothing written."""
    player = await env.player(login=False)
    _, answer = await env.post("/result.html", result_params(player, "w1", "1.00"))
    assert answer["error"] == 2
    assert await env.written() == 0


async def test_a_redis_flush_loses_no_win(env: Env) -> None:
    """After Redis lost the remembered currency, token-less calls take it from the round in PostgreSQL."""
    player = await env.player(currency="BTC", balance_minor=5_000_000)
    await env.post("/bet.html", bet_params(player, "b1", "0.01"))
    await env.post("/bet.html", bet_params(player, "b2", "0.02", round_id="r2"))
    await env.app[keys.SESSIONS].redis.flushdb()
    _, win = await env.post("/result.html", result_params(player, "w1", "0.5"))
    _, refund = await env.post("/refund.html", call(player, reference="b2"))
    _, balance = await env.post("/balance.html", call(player))
    assert (win["error"], refund["error"], balance["error"]) == (0, 0, 0)
    assert (win["currency"], balance["currency"]) == ("BTC", "BTC")
    assert await env.money(currency="BTC") == 5_000_000 - 1_000_000 + 50_000_000
    remembered = await env.app[keys.SESSIONS].redis.get(
        players.currency_key(env.app[keys.PROVIDER_CONTEXT], f"{OPERATOR}:{player.player_id}")
    )
    assert remembered == b"BTC"


# refund.html, endRound.html, adjustment.html


async def test_refund_rules(env: Env) -> None:
    """A refund restores the bet once; of an unknown bet it is 0 and that bet later 3; after a win 120."""
    player = await env.player()
    await env.post("/bet.html", bet_params(player, "b1", "6.00"))
    refund = call(player, reference="b1", roundId="r1", gameId=GAME, amount="6.00")
    raw, first = await env.post("/refund.html", refund)
    _, again = await env.post("/refund.html", refund)
    assert set(first) == {"transactionId", "error", "description"}
    assert (first["error"], again["error"], again["transactionId"]) == (0, 0, first["transactionId"])
    assert b"cash" not in raw
    assert await env.money() == 100_00
    _, unseen = await env.post("/refund.html", call(player, reference="b2"))
    _, late = await env.post("/bet.html", bet_params(player, "b2", "1.00", round_id="r2"))
    assert (unseen["error"], late["error"]) == (0, 3)
    await env.post("/bet.html", bet_params(player, "b3", "1.00", round_id="r3"))
    await env.post("/result.html", result_params(player, "w3", "2.00", round_id="r3"))
    _, settled = await env.post("/refund.html", call(player, reference="b3", roundId="r3"))
    assert settled["error"] == 120
    assert await env.money() == 101_00


async def test_end_round_answers_the_balance_and_repeats(env: Env) -> None:
    """An endRound answers cash and bonus; the same end again is 0 and moves nothing."""
    player = await env.player()
    await env.post("/bet.html", bet_params(player, "b1", "1.00"))
    params = call(player, gameId=GAME, roundId="r1", roundDetails="spin", win="0.00")
    _, first = await env.post("/endRound.html", params)
    _, again = await env.post("/endRound.html", params)
    expected = {"cash": Decimal("99.00"), "bonus": Decimal("0.00"), "error": 0, "description": "Success"}
    assert first == expected
    assert again == expected
    _, bad_win = await env.post("/endRound.html", {**params, "win": "lots"})
    assert bad_win["error"] == 7


async def test_adjustment_is_signed(env: Env) -> None:
    """A positive adjustment is a credit to its round; a negative one a debit in its own round."""
    player = await env.player()
    await env.post("/bet.html", bet_params(player, "b1", "1.00"))
    common = {"gameId": GAME, "roundId": "r1", "validBetAmount": "1.00", "timestamp": "1"}
    _, up = await env.post("/adjustment.html", call(player, **common, amount="3.00", reference="a1"))
    _, down = await env.post("/adjustment.html", call(player, **common, amount="-0.50", reference="a2"))
    _, broke = await env.post("/adjustment.html", call(player, **common, amount="-200.00", reference="a3"))
    assert (up["error"], down["error"], down["cash"], broke["error"]) == (0, 0, Decimal("101.50"), 1)
    assert (await env.stored("debit", "a2"))["round_id"] == "adjustment:a2"
    assert (await env.stored("credit", "a1"))["round_id"] == "r1"


async def test_storage_failure_is_100_and_130_on_end_round(env: Env) -> None:
    """When the database is gone a bet answers 100 and an endRound 130, so Pragmatic retries."""
    player = await env.player()
    await env.app[keys.PG_POOL].close()
    _, bet = await env.post("/bet.html", bet_params(player, "b1", "1.00"))
    _, end = await env.post("/endRound.html", call(player, gameId=GAME, roundId="r1"))
    assert (bet["error"], end["error"]) == (100, 130)
    adapter = env.app[keys.ADAPTERS]["pragmatic"]
    assert errors.native(InProgressError("busy"), "debit") is errors.INTERNAL_RETRY
    assert errors.native(UnavailableError("down"), errors.END_ROUND) is errors.END_ROUND_RETRY
    assert adapter.error_codes[Reason.OPERATOR_UNKNOWN].code == 120


# Launch and catalogue.


def test_launch_url_is_the_signed_game_url_request() -> None:
    """The launch URL is game/url with secureLogin, symbol, token, player, mode and a valid hash."""
    adapter = PragmaticAdapter(make_config())
    launch = LaunchRequest(
        token="tok",
        user_id="op1:p1",
        game_id=GAME,
        currency="EUR",
        language="de",
        country="DE",
        jurisdiction="MT",
        device="mobile",
        lobby_url="https://casino.test/lobby",
        cashier_url="https://casino.test/pay",
    )
    url = urlsplit(adapter.launch_url(launch))
    params = dict(parse_qsl(url.query))
    assert (
        f"{url.scheme}://{url.netloc}{url.path}"
        == "https://api.example.test/IntegrationService/v3/http/CasinoGameAPI/game/url/"
    )
    assert params | {"hash": ""} == {
        "secureLogin": "croupier_test",
        "symbol": GAME,
        "language": "de",
        "playMode": "REAL",
        "platform": "MOBILE",
        "lobbyUrl": "https://casino.test/lobby",
        "cashierUrl": "https://casino.test/pay",
        "country": "DE",
        "jurisdiction": "MT",
        "token": "tok",
        "externalPlayerId": "op1:p1",
        "hash": "",
    }
    signing.verify(params, SECRET)
    assert adapter.launch_params(launch) == params
    demo = dict(
        parse_qsl(urlsplit(adapter.launch_url(LaunchRequest("tok", "op1:p1", GAME, "EUR", real=False))).query)
    )
    assert demo["playMode"] == "DEMO"
    assert "token" not in demo
    assert "externalPlayerId" not in demo
    url_, form = adapter.games_request()
    assert url_.endswith("/CasinoGameAPI/getCasinoGames/")
    signing.verify(form, SECRET)
    with pytest.raises(ValueError, match="secure_login"):
        PragmaticAdapter(make_config(secure_login=None)).launch_url(launch)


def test_catalogue_comes_from_the_configured_games() -> None:
    """The catalogue lists the configured games."""
    games = PragmaticAdapter(make_config()).catalogue()
    assert [(g.game_id, g.name, g.demo) for g in games] == [
        (GAME, "Gates of Olympus", True),
        ("vs10bbbonanza", "vs10bbbonanza", False),
    ]


# The simulator.


async def test_simulator_plays_a_full_round(env: Env) -> None:
    """The simulator authenticates, bets twice, pays a win and a prize drop, and ends the round."""
    player = await env.player()
    sim = env.sim
    assert (await sim.bet(player, 1_00, "r1", "b1")).ok
    assert (await sim.bet(player, 2_00, "r1", "b2")).ok
    win = await sim.prize_drop(player, 5_00, 1_00, "r1", "w1", "pd1")
    assert (win.outcome, win.balance_minor) == (Outcome.OK, 100_00 - 3_00 + 6_00)
    end = await sim.end_round(player, "r1")
    assert (end.outcome, end.balance_minor) == (Outcome.OK, 103_00)
    refused = await sim.bet(player, 1_00, "r1", "b3")
    assert (refused.outcome, refused.native_code, refused.reasons) == (
        Outcome.REFUSED,
        "3",
        errors.reasons(3),
    )
    assert Reason.ROUND_CLOSED in refused.reasons
    adjusted = await sim.adjustment(player, -50, "r1", "adj1")
    assert (adjusted.ok, await env.money()) == (True, 102_50)
    unsigned = await sim.send_raw("bet", sim.bet_body(player, "1.00", "r2", "b4"), sign=False)
    signed = await sim.send_raw("bet", sim.bet_body(player, "1.005", "r2", "b4"))
    assert (unsigned.outcome, signed.outcome) == (Outcome.UNAUTHORIZED, Outcome.INVALID)


class Middleman:
    """Sits between the simulator and the gateway: records calls, holds or fails some of them."""

    def __init__(self, upstream: str, http: aiohttp.ClientSession) -> None:
        self.upstream = upstream
        self.http = http
        self.calls: list[str] = []
        self.fail: dict[str, int] = {}  # endpoint -> how many times to answer 100 without forwarding
        self.hold: set[str] = set()  # endpoints whose (applied) answer is held back
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        """Forward one call, unless told to fail or hold it."""
        endpoint = request.match_info["endpoint"]
        self.calls.append(endpoint)
        body = await request.read()
        if self.fail.get(endpoint, 0) > 0:
            self.fail[endpoint] -= 1
            return web.json_response({"error": 100, "description": "Internal server error, retry"})
        headers = {"Content-Type": request.headers["Content-Type"]}
        async with self.http.post(f"{self.upstream}{request.path}", data=body, headers=headers) as resp:
            raw = await resp.read()
        if endpoint in self.hold:
            await self.release.wait()
        return web.Response(body=raw, content_type="application/json")


@pytest.fixture
async def middled(start, aiohttp_server) -> AsyncIterator[tuple[Env, Middleman]]:
    """Return a gateway whose simulator talks through a Middleman with a short timeout."""
    holder: dict[str, Middleman] = {}
    app = web.Application()

    async def handle(request: web.Request) -> web.Response:
        return await holder["m"].handle(request)

    app.router.add_post("/providers/pragmatic/{endpoint}", handle)
    server = await aiohttp_server(app)
    env = await start(sim_url=str(server.make_url("/")).rstrip("/"), sim_timeout_s=0.5)
    middleman = Middleman(str(env.client.make_url("/")).rstrip("/"), env.client.session)
    holder["m"] = middleman
    yield env, middleman
    middleman.release.set()


async def test_simulator_refunds_a_bet_that_times_out(middled) -> None:
    """A bet whose answer never comes is refunded by the simulator; the player ends whole."""
    env, middleman = middled
    player = await env.player()
    middleman.hold.add("bet.html")
    answer = await env.sim.bet(player, 3_00, "r1", "b1", retry=True)
    middleman.release.set()
    assert (answer.outcome, answer.native_code) == (Outcome.RETRYABLE, "timeout")
    assert middleman.calls[0] == "authenticate.html"
    assert "refund.html" in middleman.calls
    assert await env.money() == 100_00


async def test_simulator_refunds_a_bet_answered_100_and_retries_owed_money(middled) -> None:
    """A bet answered 100 is refunded; a result answered 100 is retried until it is paid, once."""
    env, middleman = middled
    player = await env.player()
    middleman.fail["bet.html"] = 1
    refused = await env.sim.bet(player, 1_00, "r1", "b1", retry=True)
    assert refused.outcome is Outcome.RETRYABLE
    assert middleman.calls == ["authenticate.html", "bet.html", "refund.html"]
    late = await env.sim.bet(player, 1_00, "r1", "b1")
    assert (late.outcome, late.native_code) == (Outcome.REFUSED, "3")
    assert (await env.sim.bet(player, 1_00, "r2", "b2")).ok
    middleman.fail["result.html"] = 3
    win = await env.sim.win(player, 4_00, "r2", "w2", "b2")
    assert (win.outcome, win.balance_minor) == (Outcome.OK, 103_00)
    assert middleman.calls.count("result.html") == 4
    middleman.fail["endRound.html"] = 2
    assert (await env.sim.end_round(player, "r2")).ok
    assert middleman.calls.count("endRound.html") == 3
    assert await env.money() == 103_00


async def test_simulator_pays_every_kind_pragmatic_has(env: Env) -> None:
    """Bonus, jackpot, promo and free-round payouts go to their endpoints; other kinds are refused."""
    player = await env.player()
    for n, kind in enumerate(("bonus", "jackpot", "promo", "freeround")):
        answer = await env.sim.win(player, 1_00, f"k{n}", f"{kind}-1", "none", kind=kind)
        assert answer.ok, (kind, answer)
    assert await env.money() == 104_00
    with pytest.raises(NotImplementedError, match="no cashback payout"):
        await env.sim.win(player, 1_00, "k9", "x", "none", kind="cashback")
