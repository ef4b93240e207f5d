"""The in-house games as a provider: rounds through the player API on a real gateway and wallet core.

What each test shows (requirements from shared/rng-certification.md in brackets):
    every game moves exactly -bet + win ........ test_each_game_plays_and_moves_exactly_bet_less_win
    a retry never draws again, moves nothing [9] test_a_retry_replays_the_stored_outcome
    an interrupted round resumes [9] ........... test_an_interrupted_round_resumes_with_its_stored_outcome
    concurrent copies draw once, pay once [9] .. test_concurrent_copies_draw_once_and_pay_once
    a refused bet shows no outcome [9] ......... test_a_refused_bet_shows_no_outcome
    expired session: no new round, old answered  test_an_expired_session_refuses_new_rounds_only
    recall from the database alone [10] ........ test_recall_reproduces_the_round_and_its_balances
    tampered draws are caught .................. test_recall_reports_tampered_draws
    provably fair: commit, rotate, verify ...... test_fair_mode_commits_reveals_and_verifies
    same draws, other bet, same outcome [7] .... test_the_same_draws_with_another_bet_give_the_same_outcome
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import shlex
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from helpers import *  # noqa: F403 -- the harness fixtures: harness, backend, gw
from helpers import Harness, gateway_settings

from gateway import keys
from gateway.app import create_app, provider_schema
from providers.base import LaunchRequest
from providers.conformance.report import Verdict, run_battery
from providers.house import cli, recall, schemas, store
from providers.house.adapter import HouseAdapter
from providers.house.play import open_round
from providers.house.simulator import HouseSimulator
from providers.simulator import Outcome, SimPlayer, SimulatorOptions
from rng import cli as rng_cli
from rng.fair import FairSource, commitment
from rng.games import cli as games_cli
from rng.games.base import load_game
from rng.source import ReplaySource
from wallet.backends.ledger import open_account
from wallet.pam import store as pam_store
from wallet.pam.server import PAM_POOL, create_pam_app
from wallet.pam.settings import PamSettings
from wallet.policy import OperatorPolicy

OPERATOR = "op1"
OPENING = 100_00
MAX_BET = 500_00
FAST = SimulatorOptions(timeout_s=10.0, retry_delay_s=0.02, max_retries=100)
PLAYS: dict[str, tuple[int, dict[str, Any]]] = {
    "slot": (1_00, {}),
    "roulette": (
        3_00,
        {
            "bets": [
                {"type": "straight", "numbers": [17], "amount_minor": 1_00},
                {"type": "red", "amount_minor": 1_00},
                {"type": "dozen", "numbers": list(range(1, 13)), "amount_minor": 1_00},
            ]
        },
    ),
    "dice": (2_00, {"target": 50, "direction": "under"}),
}


@dataclass
class House:
    """A running gateway serving the house games, its wallet backend and a player API client."""

    app: Any
    client: TestClient
    sim: HouseSimulator
    backend: str = "ledger"
    pam_pool: Any = None

    @property
    def pool(self) -> Any:
        """Return the gateway's connection pool."""
        return self.app[keys.PG_POOL]

    async def player(self, balance_minor: int = OPENING, *, provider: str = "house") -> SimPlayer:
        """Open a funded account where the backend keeps money, and a house session for it."""
        player_id = f"p-{uuid.uuid4().hex[:10]}"
        if self.backend == "ledger":
            async with self.pool.acquire() as conn:
                await open_account(conn, OPERATOR, player_id, "EUR", balance_minor)
        else:
            await pam_store.set_player(self.pam_pool, player_id, "EUR", balance_minor)
        session = await self.app[keys.SESSIONS].create(OPERATOR, player_id, "EUR", provider, "house:slot")
        return SimPlayer(OPERATOR, player_id, "EUR", session.token)

    async def money(self, player: SimPlayer) -> int:
        """Return the player's balance where the money really is."""
        return await self.money_of(player.player_id)

    async def money_of(self, player_id: str) -> int:
        """Return a player's balance, by id, where the money really is."""
        if self.backend == "ledger":
            value = await self.pool.fetchval(
                "SELECT balance_minor FROM croupier.accounts WHERE operator = $1 AND player_id = $2",
                OPERATOR,
                player_id,
            )
            return int(value)
        found = await pam_store.get_player(self.pam_pool, player_id)
        assert found is not None
        return found.balance_minor

    async def stored(self, round_id: str) -> store.StoredRound:
        """Return a round from the house's own table."""
        async with self.pool.acquire() as conn:
            found = await store.find_round(conn, uuid.UUID(round_id))
        assert found is not None, f"no stored round {round_id}"
        return found

    async def rounds_count(self) -> int:
        """Return how many rounds are stored."""
        return int(await self.pool.fetchval(f"SELECT count(*) FROM {store.SCHEMA}.rounds"))

    async def post(self, path: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST JSON under /providers/house and return the status and body."""
        async with self.client.post(f"/providers/house{path}", json=payload) as resp:
            return resp.status, await resp.json()

    async def get(self, path: str, token: str | None) -> tuple[int, dict[str, Any]]:
        """GET under /providers/house with the token as the bearer credential."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.client.get(f"/providers/house{path}", headers=headers) as resp:
            return resp.status, await resp.json()

    async def round(
        self, player: SimPlayer, which: str, round_id: str | None = None, **changes: Any
    ) -> tuple[int, dict[str, Any]]:
        """Play one round of a game with its standard bet (fields changed as given), once."""
        bet, params = PLAYS[which]
        body = {
            "token": player.token,
            "round_id": round_id or str(uuid.uuid4()),
            "game": which,
            "bet_minor": bet,
            "params": params,
        } | changes
        return await self.post("/rounds", body)


@contextlib.asynccontextmanager
async def serve_house(
    database_url: str, redis_url: str, backend: str = "ledger", wallet_url: str = ""
) -> AsyncIterator[House]:
    """Start a gateway with the house provider (passed explicitly, as the kit does)."""
    policy = OperatorPolicy(OPERATOR, max_bet_minor={"EUR": MAX_BET})
    base = gateway_settings(database_url, redis_url, backend, wallet_url=wallet_url, policy=policy)
    settings = dataclasses.replace(base, providers={"house": HouseAdapter.sample_config()})
    app = create_app(settings, {"house": HouseAdapter})
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        sim = HouseSimulator(str(client.make_url("/")), client.session, settings.providers["house"], FAST)
        yield House(app, client, sim, backend)
    finally:
        await client.close()


@pytest.fixture
async def house(fresh_db: str, fresh_redis: str) -> AsyncIterator[House]:
    """Yield a gateway with the house games on the ledger backend."""
    async with serve_house(fresh_db, fresh_redis) as running:
        yield running


def test_the_schema_is_the_gateways_provider_schema() -> None:
    """The store queries the schema the gateway migrates for this adapter."""
    assert provider_schema(HouseAdapter.name) == store.SCHEMA


@pytest.mark.parametrize("game", sorted(PLAYS))
async def test_each_game_plays_and_moves_exactly_bet_less_win(house: House, game: str) -> None:
    """A round debits the bet and credits the game's win through the core; the books agree."""
    player = await house.player()
    status, answer = await house.round(player, game)
    assert status == 200, answer
    bet = PLAYS[game][0]
    win = answer["win_minor"]
    assert answer["status"] == "OK"
    assert answer["replay"] is False
    assert answer["balance_minor"] == OPENING - bet + win == await house.money(player)
    assert answer["balance"] == f"{(OPENING - bet + win) // 100}.{(OPENING - bet + win) % 100:02d}"
    stored = await house.stored(answer["round_id"])
    assert (stored.status, stored.game, stored.bet_minor, stored.win_minor) == ("settled", game, bet, win)
    assert stored.state == answer["outcome"]
    assert stored.draws, "a round records the draws it used"
    assert (stored.balance_before_minor, stored.balance_after_minor) == (OPENING, OPENING - bet + win)
    entries = await house.pool.fetch(
        "SELECT amount_minor FROM croupier.entries WHERE kind = 'operation' AND player_id = $1 ORDER BY id",
        player.player_id,
    )
    assert [e["amount_minor"] for e in entries if e["amount_minor"]] == [-bet] + ([win] if win else [])


async def test_a_retry_replays_the_stored_outcome(house: House) -> None:
    """The same round id again answers the same outcome, draws nothing new and moves no money."""
    player = await house.player()
    round_id = str(uuid.uuid4())
    first_status, first = await house.round(player, "slot", round_id)
    assert first_status == 200, first
    before = await house.stored(round_id)
    money = await house.money(player)
    for _ in range(3):
        status, again = await house.round(player, "slot", round_id)
        assert status == 200, again
        assert again["replay"] is True
        assert (again["outcome"], again["win_minor"]) == (first["outcome"], first["win_minor"])
        assert again["balance_minor"] == money
    after = await house.stored(round_id)
    assert after.draws == before.draws
    assert await house.money(player) == money
    assert await house.rounds_count() == 1


async def test_an_interrupted_round_resumes_with_its_stored_outcome(house: House) -> None:
    """A round drawn and stored whose bet never reached the wallet completes later with that outcome."""
    player = await house.player()
    round_id = str(uuid.uuid4())
    bet, params = PLAYS["slot"]
    body = {"token": player.token, "round_id": round_id, "game": "slot", "bet_minor": bet, "params": params}
    # The first half of a request that then died: the outcome is drawn and stored, nothing debited.
    adapter = house.app[keys.ADAPTERS]["house"]
    assert isinstance(adapter, HouseAdapter)
    request = schemas.RoundRequest.from_json(body)
    drawn, _ = await open_round(house.pool, adapter.book, house.app[keys.PROVIDER_CONTEXT], request)
    assert drawn.status == "drawn"
    assert await house.money(player) == OPENING
    status, answer = await house.post("/rounds", body)
    assert status == 200, answer
    assert (answer["outcome"], answer["win_minor"]) == (drawn.state, drawn.win_minor)
    assert answer["replay"] is False, "the debit itself is new"
    after = await house.stored(round_id)
    assert (after.draws, after.status) == (drawn.draws, "settled")
    assert await house.money(player) == OPENING - bet + drawn.win_minor


async def test_concurrent_copies_draw_once_and_pay_once(house: House) -> None:
    """Many copies of one round at the same moment give one outcome and move the money once."""
    player = await house.player()
    round_id = str(uuid.uuid4())
    answers = await asyncio.gather(
        *(house.sim.play(player, "dice", 2_00, PLAYS["dice"][1], round_id) for _ in range(12))
    )
    assert all(a.outcome is Outcome.OK for a in answers), [a.raw for a in answers]
    outcomes = {orjson.dumps(a.raw["outcome"]) for a in answers}
    assert len(outcomes) == 1
    win = answers[0].raw["win_minor"]
    assert await house.money(player) == OPENING - 2_00 + win
    assert await house.rounds_count() == 1


async def test_a_changed_retry_is_a_mismatch(house: House) -> None:
    """A round id reused with another bet, game, parameters or mode is refused and moves nothing."""
    player = await house.player()
    round_id = str(uuid.uuid4())
    assert (await house.round(player, "dice", round_id))[0] == 200
    money = await house.money(player)
    changes: list[tuple[dict[str, Any], str]] = [
        ({"bet_minor": 3_00}, "bet"),
        ({"params": {"target": 60, "direction": "under"}}, "params"),
        ({"mode": "fair"}, "mode"),
        ({"game": "slot", "params": {}, "bet_minor": 2_00}, "game"),
    ]
    for change, field in changes:
        status, answer = await house.round(player, "dice", round_id, **change)
        assert (status, answer["code"], answer["field"]) == (409, "ROUND_MISMATCH", field)
        assert "outcome" not in answer
    stranger = await house.player()
    status, answer = await house.round(stranger, "dice", round_id)
    assert (status, answer["field"]) == (409, "player")
    assert await house.money(player) == money


async def test_a_refused_bet_shows_no_outcome(house: House) -> None:
    """A bet above the balance is refused with no outcome in the answer, recall or retry."""
    player = await house.player(50)
    round_id = str(uuid.uuid4())
    status, answer = await house.round(player, "slot", round_id)
    assert (status, answer["code"], answer["retryable"]) == (422, "INSUFFICIENT_FUNDS", False)
    assert answer["balance_minor"] == 50
    assert not {"outcome", "round", "win_minor"} & set(answer)
    stored = await house.stored(round_id)
    assert (stored.status, stored.refusal) == ("refused", "insufficient_funds")
    status, again = await house.round(player, "slot", round_id)
    assert (status, again["code"]) == (422, "INSUFFICIENT_FUNDS")
    status, recalled = await house.get(f"/rounds/{round_id}", player.token)
    assert status == 200
    assert recalled["status"] == "OK"
    assert recalled["round_id"] == round_id
    assert not {"outcome", "draws", "win_minor"} & set(recalled)
    assert await house.money(player) == 50


async def test_a_bet_above_the_operator_limit_is_refused(house: House) -> None:
    """The operator's maximum bet applies to house rounds like to any provider's bet."""
    player = await house.player(MAX_BET * 2)
    status, answer = await house.round(player, "dice", bet_minor=MAX_BET + 1)
    assert (status, answer["code"]) == (422, "LIMIT_EXCEEDED")
    assert "outcome" not in answer
    assert await house.money(player) == MAX_BET * 2


async def test_an_expired_session_refuses_new_rounds_only(house: House) -> None:
    """After the session ends a new round is refused, but a played round still answers its outcome."""
    player = await house.player()
    round_id = str(uuid.uuid4())
    status, played = await house.round(player, "roulette", round_id)
    assert status == 200
    await house.app[keys.SESSIONS].end(player.token)
    count = await house.rounds_count()
    status, answer = await house.round(player, "roulette")
    assert (status, answer["code"]) == (422, "SESSION_EXPIRED")
    assert "outcome" not in answer
    assert await house.rounds_count() == count, "a refused new round is not drawn"
    status, again = await house.round(player, "roulette", round_id)
    assert status == 200, again
    assert (again["outcome"], again["replay"]) == (played["outcome"], True)


async def test_a_redis_loss_moves_no_money(house: House) -> None:
    """After Redis lost every session, a played round replays by its token; a drawn one debits nothing."""
    player = await house.player()
    played_id, drawn_id = str(uuid.uuid4()), str(uuid.uuid4())
    status, played = await house.round(player, "slot", played_id)
    assert status == 200, played
    bet, params = PLAYS["slot"]
    body = {"token": player.token, "round_id": drawn_id, "game": "slot", "bet_minor": bet, "params": params}
    adapter = house.app[keys.ADAPTERS]["house"]
    assert isinstance(adapter, HouseAdapter)
    request = schemas.RoundRequest.from_json(body)
    await open_round(house.pool, adapter.book, house.app[keys.PROVIDER_CONTEXT], request)
    money = await house.money(player)
    await house.app[keys.SESSIONS].redis.flushdb()
    # ...and the node's own copy of the session has lapsed too (it keeps one session_cache_s).
    house.app[keys.SESSIONS].forget_cached()
    status, again = await house.round(player, "slot", played_id)
    assert status == 200, again
    assert (again["outcome"], again["replay"], again["balance_minor"]) == (played["outcome"], True, money)
    status, refused = await house.post("/rounds", body)
    assert (status, refused["code"]) == (422, "SESSION_EXPIRED")
    assert (await house.stored(drawn_id)).status == "refused"
    assert await house.money(player) == money


async def test_requests_without_a_house_session_are_refused(house: House) -> None:
    """No token is unauthorized, another provider's session too; malformed rounds are invalid."""
    player = await house.player()
    other = await house.player(provider="generic")
    body = {"round_id": str(uuid.uuid4()), "game": "dice", "bet_minor": 100, "params": PLAYS["dice"][1]}
    status, answer = await house.post("/rounds", body)
    assert (status, answer["code"]) == (401, "UNAUTHORIZED")
    status, answer = await house.round(other, "dice")
    assert (status, answer["code"]) == (401, "UNAUTHORIZED")
    bad: list[dict[str, Any]] = [
        {"round_id": "r-1"},
        {"bet_minor": 1.5},
        {"bet_minor": "100"},
        {"bet_minor": True},
        {"bet_minor": 0},
        {"game": "poker"},
        {"mode": "lucky"},
        {"params": [1]},
        {"params": {"target": 99, "direction": "under"}},
    ]
    for change in bad:
        status, answer = await house.round(player, "dice", **change)
        assert (status, answer["code"]) == (400, "INVALID_REQUEST"), change
    status, answer = await house.round(player, "slot", bet_minor=1_05)
    assert (status, answer["code"]) == (400, "INVALID_REQUEST")
    assert "divisible" in answer["message"]
    assert await house.rounds_count() == 0
    assert await house.money(player) == OPENING


async def test_balance_answers_the_backend_balance(house: House) -> None:
    """POST /balance answers the player's money, and refuses an ended session."""
    player = await house.player(12_34)
    status, answer = await house.post("/balance", {"token": player.token})
    assert (status, answer["balance_minor"], answer["balance"], answer["exponent"]) == (
        200,
        12_34,
        "12.34",
        2,
    )
    await house.app[keys.SESSIONS].end(player.token)
    status, answer = await house.post("/balance", {"token": player.token})
    assert (status, answer["code"]) == (422, "SESSION_EXPIRED")


async def test_recall_reproduces_the_round_and_its_balances(house: House, fresh_db: str, capsys) -> None:
    """GET /rounds/{id} and `croupier games recall` replay the stored draws to the stored outcome."""
    player = await house.player()
    status, played = await house.round(player, "slot")
    assert status == 200
    round_id = played["round_id"]
    status, recalled = await house.get(f"/rounds/{round_id}", player.token)
    assert status == 200, recalled
    assert recalled["replay"]["reproduced"] is True
    assert recalled["outcome"] == played["outcome"]
    bet, win = recalled["bet_minor"], recalled["win_minor"]
    assert recalled["balance"] == {"before_minor": OPENING, "after_minor": OPENING - bet + win}
    assert recalled["draws"]
    assert all(0 <= value < n for n, value in recalled["draws"])
    # Someone else's token sees nothing, not even that the round exists.
    stranger = await house.player()
    assert (await house.get(f"/rounds/{round_id}", stranger.token))[0] == 404
    assert (await house.get(f"/rounds/{round_id}", None))[0] == 401
    # `croupier games recall` rebuilds it from the database alone (add_recall under the games command).
    parser = argparse.ArgumentParser(prog="croupier")
    games_cli.register(parser.add_subparsers(dest="command"), extend=cli.add_recall)
    args = parser.parse_args(["games", "recall", round_id, "--database-url", fresh_db])
    assert await asyncio.to_thread(args.func, args) == cli.EXIT_REPRODUCED
    out = capsys.readouterr().out
    assert "REPRODUCED" in out
    assert round_id in out
    args = parser.parse_args(["games", "recall", round_id, "--database-url", fresh_db, "--json"])
    assert await asyncio.to_thread(args.func, args) == cli.EXIT_REPRODUCED
    printed = orjson.loads(capsys.readouterr().out)
    assert (printed["outcome"], printed["replay"]["reproduced"]) == (played["outcome"], True)
    missing = str(uuid.uuid4())
    assert await asyncio.to_thread(cli.recall_main, missing, fresh_db) == cli.EXIT_NOT_FOUND
    # The last rounds are listed with their replay verdicts.
    status, recent = await house.get("/rounds", player.token)
    assert status == 200
    assert [r["round_id"] for r in recent["rounds"]] == [round_id]


async def test_recall_reports_tampered_draws(house: House, fresh_db: str, capsys) -> None:
    """Changing one stored draw makes the replay disagree, through the API and the command line."""
    player = await house.player()
    status, played = await house.round(player, "roulette")
    assert status == 200
    round_id = played["round_id"]
    pocket = played["outcome"]["pocket"]
    forged = [[37, (pocket + 1) % 37]]
    await house.pool.execute(
        f"UPDATE {store.SCHEMA}.rounds SET draws = $2::jsonb WHERE round_id = $1",
        uuid.UUID(round_id),
        orjson.dumps(forged).decode(),
    )
    status, recalled = await house.get(f"/rounds/{round_id}", player.token)
    assert status == 200
    assert recalled["replay"]["reproduced"] is False
    assert recalled["replay"]["state_matches"] is False
    assert await asyncio.to_thread(cli.recall_main, round_id, fresh_db) == cli.EXIT_MISMATCH
    assert "MISMATCH" in capsys.readouterr().out
    # One draw too many is caught as well.
    await house.pool.execute(
        f"UPDATE {store.SCHEMA}.rounds SET draws = $2::jsonb WHERE round_id = $1",
        uuid.UUID(round_id),
        orjson.dumps([[37, pocket], [37, 0]]).decode(),
    )
    status, recalled = await house.get(f"/rounds/{round_id}", player.token)
    assert recalled["replay"]["draws_all_used"] is False
    assert recalled["replay"]["reproduced"] is False


async def test_fair_mode_commits_reveals_and_verifies(house: House, capsys) -> None:
    """The commitment is shown before play, rounds use it with the nonce, rotation reveals the seed."""
    player = await house.player()
    status, fair = await house.get("/fair", player.token)
    assert status == 200
    committed = fair["active"]["commitment"]
    assert "server_seed" not in fair["active"]
    status, chosen = await house.post(
        "/fair/client-seed", {"token": player.token, "client_seed": "my lucky seed"}
    )
    assert (status, chosen["active"]["commitment"], chosen["active"]["client_seed"]) == (
        200,
        committed,
        "my lucky seed",
    )
    played = []
    for nonce in range(2):
        status, answer = await house.round(player, "dice", mode="fair")
        assert status == 200, answer
        assert answer["fair"] == {"commitment": committed, "client_seed": "my lucky seed", "nonce": nonce}
        played.append(answer)
    status, early = await house.get(f"/rounds/{played[0]['round_id']}/verify", player.token)
    assert (status, early["code"]) == (409, "NOT_YET")
    status, rotated = await house.post("/fair/rotate", {"token": player.token})
    assert status == 200
    seed = bytes.fromhex(rotated["revealed"]["server_seed"])
    assert commitment(seed) == committed == hashlib.sha256(seed).hexdigest()
    assert rotated["revealed"]["next_nonce"] == 2
    assert rotated["active"]["commitment"] != committed
    assert rotated["active"]["client_seed"] == "my lucky seed"
    assert rotated["active"]["next_nonce"] == 0
    dice = load_game("dice")
    for nonce, answer in enumerate(played):
        status, verified = await house.get(f"/rounds/{answer['round_id']}/verify", player.token)
        assert status == 200, verified
        assert verified["verified"] is True
        assert verified["server_seed"] == seed.hex()
        # Anyone can recompute it from the revealed seed alone.
        again = dice.play(FairSource(seed, "my lucky seed", nonce), 2_00, PLAYS["dice"][1])
        assert (again.state, again.win_minor) == (answer["outcome"], answer["win_minor"])
        # And offline with `croupier rng verify`, whose command line the endpoint gives.
        words = shlex.split(verified["command"])
        assert words[:3] == ["croupier", "rng", "verify"]
        parser = argparse.ArgumentParser(prog="croupier")
        rng_cli.register(parser.add_subparsers(dest="command"))
        args = parser.parse_args(words[1:])
        assert args.func(args) == 0
        assert orjson.loads(capsys.readouterr().out)["ok"] is True
    # A standard round has nothing to verify from seeds.
    status, standard = await house.round(player, "dice")
    assert (await house.get(f"/rounds/{standard['round_id']}/verify", player.token))[0] == 409


async def test_fair_verification_catches_a_forged_outcome(house: House) -> None:
    """A stored fair outcome that the revealed seed does not produce fails verification."""
    player = await house.player()
    status, answer = await house.round(player, "roulette", mode="fair")
    assert status == 200
    await house.post("/fair/rotate", {"token": player.token})
    pocket = answer["outcome"]["pocket"]
    forged = answer["outcome"] | {"pocket": (pocket + 1) % 37}
    await house.pool.execute(
        f"UPDATE {store.SCHEMA}.rounds SET state = $2::jsonb WHERE round_id = $1",
        uuid.UUID(answer["round_id"]),
        orjson.dumps(forged).decode(),
    )
    status, verified = await house.get(f"/rounds/{answer['round_id']}/verify", player.token)
    assert status == 200
    assert verified["verified"] is False
    assert verified["commitment_matches"] is True
    assert verified["replay"]["state_matches"] is False


async def test_the_same_draws_with_another_bet_give_the_same_outcome(house: House) -> None:
    """A stored round's draws replayed with other stakes show the same reels; only the pay scales."""
    player = await house.player()
    status, answer = await house.round(player, "slot")
    assert status == 200
    stored = await house.stored(answer["round_id"])
    async with house.pool.acquire() as conn:
        game = await recall.game_of(conn, stored)
    for factor in (2, 5, 50):
        again = game.play(ReplaySource(stored.draws), stored.bet_minor * factor, {})
        assert again.state["base"]["stops"] == stored.state["base"]["stops"]
        assert again.state["base"]["window"] == stored.state["base"]["window"]
        assert [s["window"] for s in again.state["free_spins"]] == [
            s["window"] for s in stored.state["free_spins"]
        ]
        assert again.win_minor == stored.win_minor * factor


async def test_the_page_its_files_and_the_games_are_served(house: House) -> None:
    """The slot page and its own files are served; nothing else under static/ is."""
    async with house.client.get("/providers/house/slot") as resp:
        assert resp.status == 200
        page = await resp.text()
    assert 'src="static/slot.js"' in page
    assert 'id="spin"' in page
    async with house.client.get("/providers/house/static/slot.js") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/javascript")
        assert "fetch(" in await resp.text()
    for name in ("adapter.py", "..%2Fadapter.py", "index.html"):
        async with house.client.get(f"/providers/house/static/{name}") as resp:
            assert resp.status == 404
    status, listed = await house.get("/games", None)
    assert status == 200
    games = {g["game"]: g for g in listed["games"]}
    assert set(games) == {"slot", "roulette", "dice"}
    assert (games["slot"]["reels"], games["slot"]["rows"], games["slot"]["lines"]) == (5, 3, 20)
    assert all(len(g["config_sha256"]) == 64 for g in games.values())


def test_launch_url_opens_the_slot_page() -> None:
    """A launch of the slot gives its page with the session token; the table games have no page."""
    adapter = HouseAdapter(HouseAdapter.sample_config())
    launch = LaunchRequest(token="tok-1", user_id="op1:p1", game_id="house:slot", currency="EUR")
    assert adapter.launch_url(launch) == "http://127.0.0.1:8080/providers/house/slot?token=tok-1&lang=en"
    with pytest.raises(ValueError, match="no player page"):
        adapter.launch_url(dataclasses.replace(launch, game_id="house:dice"))
    assert [g.game_id for g in adapter.catalogue()] == ["house:slot", "house:roulette", "house:dice"]


async def test_a_round_on_the_seamless_backend(harness: Harness) -> None:
    """With an operator's own wallet (the reference PAM), a round moves its money by -bet + win."""
    pam_settings = PamSettings(harness.database_url, {"gw-2025": b"operator wallet secret"})
    pam = await harness.serve(create_pam_app(pam_settings))
    wallet_url = str(pam.make_url("/")).rstrip("/")
    async with serve_house(harness.database_url, harness.redis_url, "seamless", wallet_url) as running:
        running.pam_pool = pam.app[PAM_POOL]
        player = await running.player()
        answer = await running.sim.play(player, "roulette", *PLAYS["roulette"])
        assert answer.outcome is Outcome.OK, answer.raw
        win = answer.raw["win_minor"]
        assert await running.money(player) == OPENING - 3_00 + win
        assert answer.balance_minor == OPENING - 3_00 + win
        stored = await running.stored(answer.raw["round_id"])
        assert stored.status == "settled"


async def test_the_conformance_kit_passes_what_the_protocol_can_express(fresh_db, fresh_redis) -> None:
    """The kit's balance, credential and malformed-input checks pass; bet/win scenarios are skipped."""
    report = await run_battery(HouseAdapter, fresh_db, fresh_redis)
    verdicts = {f.scenario: f.verdict for f in report.findings}
    assert report.passed, report.table()
    for scenario in (
        "balance is reported",
        "bad signature is refused",
        "malformed input is refused",
        "oversized body is refused",
    ):
        assert verdicts[scenario] is Verdict.PASS, report.table()
    assert verdicts["bet is applied"] is Verdict.SKIP
