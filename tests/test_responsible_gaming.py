"""Responsible gaming reaches every provider as its own native code; limits in force merge as documented."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_support import *  # noqa: F403
from api_support import ApiEnv

from gateway import keys
from providers import registry
from providers.conformance.harness import CURRENCY, OPENING_MINOR, Kit
from providers.conformance.scenarios import NOT_APPLIED
from providers.simulator import SimAnswer, SimPlayer, SimulatorOptions
from wallet import ledger, limits
from wallet.errors import Reason
from wallet.operations import Kind, Operation
from wallet.policy import OperatorPolicy

OPERATOR = "op1"


def kit_for(api: ApiEnv, provider: str) -> Kit:
    """Return the conformance kit's view of the API gateway, driven by the provider's own simulator."""
    adapter = api.app[keys.ADAPTERS][provider]
    config = api.app[keys.SETTINGS].providers[provider]
    options = SimulatorOptions(timeout_s=10.0, retry_delay_s=0.02, max_retries=100)
    sim = type(adapter).simulator()(str(api.client.make_url("/")), api.client.session, config, options)
    return Kit(adapter, sim, api.app)


async def relaunch(kit: Kit, player: SimPlayer) -> SimPlayer:
    """Open a new session for the player, as a launch that raced a block would have."""
    session = await kit.app[keys.SESSIONS].create(
        player.operator, player.player_id, player.currency, kit.adapter.name, "kit-game"
    )
    return replace(player, token=session.token)


async def stake(kit: Kit, player: SimPlayer, amount_minor: int) -> tuple[SimAnswer, str, str]:
    """Place a new bet (a whole round where the protocol plays rounds in one call); return it and its ids."""
    round_id, tx = uuid.uuid4().hex, kit.new_id("bet")
    if kit.sim.plays_whole_rounds:
        return await kit.sim.whole_round(player, amount_minor, round_id), round_id, tx
    return await kit.sim.bet(player, amount_minor, round_id, tx), round_id, tx


def refused_for(answer: SimAnswer, reason: Reason) -> bool:
    """Return whether the answer is a refusal with a native code the provider uses for the reason."""
    return answer.outcome in NOT_APPLIED and answer.native_code is not None and reason in answer.reasons


@pytest.mark.parametrize("provider", registry.names())
async def test_a_blocked_player_bet_gets_the_provider_blocked_code_while_wins_and_refunds_pay(
    api: ApiEnv, provider: str
) -> None:
    """Blocked through the Operator API: a new bet gets the provider's blocked code; owed money still pays."""
    kit = kit_for(api, provider)
    player = await kit.player(operator=OPERATOR)
    earlier: list[tuple[str, str]] = []
    if not kit.sim.plays_whole_rounds:  # a round-at-once protocol has no bet left open to settle later
        for amount_minor in (1_00, 2_00):
            answer, round_id, tx = await stake(kit, player, amount_minor)
            assert answer.ok, answer
            earlier.append((round_id, tx))
    before = await kit.money(player)

    reply = await api.as_(OPERATOR).put(f"/v1/players/{player.player_id}/block", {"state": "blocked"})
    assert reply.status == 200
    assert await kit.app[keys.SESSIONS].get(player.token) is None
    answer, _, _ = await stake(kit, await relaunch(kit, player), 1_00)
    assert refused_for(answer, Reason.PLAYER_BLOCKED), answer
    assert await kit.money(player) == before

    if earlier:
        (won_round, won_tx), (refunded_round, refunded_tx) = earlier
        assert (await kit.sim.win(player, 4_00, won_round, kit.new_id("win"), won_tx)).ok
        assert (await kit.sim.rollback(player, refunded_tx, refunded_round, kit.new_id("rb"), 2_00)).ok
        assert await kit.money(player) == OPENING_MINOR - 1_00 + 4_00


@pytest.mark.parametrize("provider", registry.names())
async def test_a_bet_over_the_player_limits_gets_the_provider_limit_code(api: ApiEnv, provider: str) -> None:
    """A bet above the player's max bet, or past its loss limit, gets the provider's native limit code."""
    kit = kit_for(api, provider)
    player = await kit.player(operator=OPERATOR)
    path = f"/v1/players/{player.player_id}/limits"
    client = api.as_(OPERATOR)

    await client.put(path, {"currency": CURRENCY, "max_bet_minor": 5_00})
    answer, _, _ = await stake(kit, player, 6_00)
    assert refused_for(answer, Reason.LIMIT_EXCEEDED), answer
    await client.put(path, {"max_bet_minor": None, "loss_limit_minor": 1_00})
    answer, _, _ = await stake(kit, player, 2_00)
    assert refused_for(answer, Reason.LIMIT_EXCEEDED), answer
    assert await kit.money(player) == OPENING_MINOR


def _row(**values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(ledger.PLAYER_LIMIT_COLUMNS)
    row["blocked_now"] = False
    row.update(values)
    return row


POLICY = OperatorPolicy(
    "op",
    max_bet_minor={"EUR": 100_00},
    loss_limit_minor={"EUR": 500_00, "USD": 400_00},
    loss_period="week",
    session_limit_s=3600,
    reality_check_s=1800,
)


def test_the_operator_defaults_apply_where_the_player_has_none_of_its_own() -> None:
    """With no row, every limit is the operator's default for the currency asked for."""
    usd = limits.in_force(POLICY, "op", "p", None, "USD")
    assert (usd.currency, usd.max_bet_minor, usd.loss_limit_minor, usd.loss_period) == (
        "USD",
        None,
        400_00,
        "week",
    )
    assert (usd.session_limit_s, usd.reality_check_s, usd.block) == (3600, 1800, None)
    # Defaults in two currencies: without one asked for, none speaks for the player.
    assert limits.in_force(POLICY, "op", "p", None).currency is None


def test_the_player_own_values_win_but_the_operator_bet_cap_stays() -> None:
    """Own loss limit, period and times win; the max bet in force is the lower of own and operator's cap."""
    row = _row(
        currency="EUR", max_bet_minor=500_00, loss_limit_minor=50_00, loss_period="day", reality_check_s=600
    )
    eur = limits.in_force(POLICY, "op", "p", row)  # type: ignore[arg-type]
    assert (eur.currency, eur.max_bet_minor, eur.loss_limit_minor) == ("EUR", 100_00, 50_00)
    assert (eur.loss_period, eur.session_limit_s, eur.reality_check_s) == ("day", 3600, 600)
    lower = limits.in_force(POLICY, "op", "p", _row(currency="EUR", max_bet_minor=20_00))  # type: ignore[arg-type]
    assert lower.max_bet_minor == 20_00
    # A bet in another currency is held to the operator's defaults for that currency.
    usd = limits.in_force(POLICY, "op", "p", row, "USD")  # type: ignore[arg-type]
    assert (usd.max_bet_minor, usd.loss_limit_minor) == (None, 400_00)


def test_only_a_block_in_force_is_answered() -> None:
    """A row's block is in force only while the database says so (its end not yet passed)."""
    since = datetime.now(UTC) - timedelta(days=1)
    stale = _row(block_state="blocked", blocked_since=since, blocked_until=since, blocked_now=False)
    assert limits.in_force(POLICY, "op", "p", stale).block is None  # type: ignore[arg-type]
    live = _row(block_state="self_excluded", block_reason="player", blocked_since=since, blocked_now=True)
    block = limits.in_force(POLICY, "op", "p", live).block  # type: ignore[arg-type]
    assert block == limits.Block("self_excluded", "player", since, None)


async def test_play_money_is_never_held_to_a_block_or_limit(api: ApiEnv) -> None:
    """A play-money ledger skips the player's row entirely; a real-money one reads its block."""
    pool = api.app[keys.PG_POOL]
    await pool.execute(
        "INSERT INTO croupier.player_limits (operator, player_id, currency, loss_limit_minor, block_state,"
        " blocked_since) VALUES ('op1.demo', 'p1', 'EUR', 0, 'blocked', now())"
    )
    op = Operation(Kind.DEBIT, "generic", "op1.demo", "p1", "EUR", "b1", 1_00, "r1")
    real = OperatorPolicy("op1.demo")
    async with pool.acquire() as conn, conn.transaction():
        round_ = await ledger.lock_bet_round(conn, op)
    held = limits.for_bet(real, op, round_)
    free = limits.for_bet(replace(real, play_money=True), op, round_)
    assert held.block is not None
    assert held.loss_limit_minor == 0
    assert (free.block, free.loss_limit_minor, free.max_bet_minor) == (None, None, None)
