"""Stuck rounds, driven into that state through each provider's simulator: settled by rule, else reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway import keys
from gateway.stuck_rounds import StuckRounds
from providers import registry
from providers.conformance.harness import OPENING_MINOR, OPERATOR, Kit, running_kit
from providers.simulator import SimPlayer
from wallet.reconcile import Action, Kind
from wallet.reconciliation import run_ledger

STAKE_MINOR = 1_00
# What each protocol's own rule does with a round left open: settle it, or leave it to a person.
RULES = {
    "generic": "settled",
    "house": "settled",
    "pragmatic": "reported",
    "evolution": "reported",
    "softswiss": "reported",
}


def _stuck(kit: Kit) -> StuckRounds:
    app = kit.app
    return StuckRounds(app[keys.PG_POOL], app[keys.WALLET], app[keys.ADAPTERS], app[keys.PROVIDER_CONTEXT])


async def _round_state(kit: Kit, player: SimPlayer) -> list[str]:
    rows = await kit.app[keys.PG_POOL].fetch(
        "SELECT state FROM croupier.rounds WHERE operator = $1 AND player_id = $2",
        player.operator,
        player.player_id,
    )
    return [row["state"] for row in rows]


async def _leave_open(kit: Kit, player: SimPlayer) -> None:
    """Leave one of the player's rounds open with its bet taken: the provider never sends the rest."""
    if not kit.sim.plays_whole_rounds:
        assert (await kit.sim.bet(player, STAKE_MINOR, "round-1", "bet-1")).ok
        return
    # One call plays the whole round here: the win is made to fail in the database (as a node lost
    # between bet and win), and the page gives up repeating the round.
    pool = kit.app[keys.PG_POOL]
    await pool.execute(
        "CREATE FUNCTION croupier.no_wins() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF NEW.kind = 'credit' THEN RAISE EXCEPTION 'the node died' USING ERRCODE = 'XX000'; END IF;"
        " RETURN NEW; END $$;"
        " CREATE TRIGGER no_wins BEFORE INSERT ON croupier.operations FOR EACH ROW"
        " EXECUTE FUNCTION croupier.no_wins()"
    )
    kit.sim.options.max_retries = 2
    try:
        with pytest.raises(TimeoutError):
            await kit.sim.whole_round(player, STAKE_MINOR, "round-1")
    finally:
        await pool.execute("DROP TRIGGER no_wins ON croupier.operations; DROP FUNCTION croupier.no_wins()")


@pytest.mark.parametrize("provider", registry.names())
async def test_a_round_left_open_past_the_horizon_is_settled_by_rule_or_reported(
    provider: str, fresh_db: str, fresh_redis: str
) -> None:
    """Nothing before the horizon; past it the protocol's rule settles the round, or it is reported."""
    adapter_class = registry.load(provider)
    async with running_kit(adapter_class, fresh_db, fresh_redis) as kit:
        player = await kit.player()
        await _leave_open(kit, player)
        assert await kit.money(player) == OPENING_MINOR - STAKE_MINOR
        assert await _round_state(kit, player) == ["open"]
        stuck = _stuck(kit)
        horizon = timedelta(seconds=kit.adapter.stuck_horizon_s())
        start = datetime.now(UTC) - timedelta(minutes=1)
        # Within the horizon the provider may still settle it: nothing is found.
        assert await stuck.settle(OPERATOR, start, start + timedelta(minutes=2), datetime.now(UTC)) == []
        later = datetime.now(UTC) + horizon + timedelta(minutes=1)
        window = (start + horizon, later)
        stored = await kit.app[keys.PG_POOL].fetchval(
            "SELECT round_id FROM croupier.rounds WHERE player_id = $1", player.player_id
        )
        findings = await stuck.settle(OPERATOR, *window, later)
        assert [(d.kind, d.subject, outcome) for d, outcome in findings] == [
            (Kind.STUCK_ROUND, f"{provider}/{player.player_id}/{stored}", RULES[provider])
        ]
        diff = findings[0][0]
        if RULES[provider] == "reported":
            assert diff.action is Action.REPORT
            assert "its protocol gives the gateway no rule to settle it" in diff.reason
            assert await kit.money(player) == OPENING_MINOR - STAKE_MINOR  # nothing moved
            assert await _round_state(kit, player) == ["open"]
        else:
            assert diff.action is Action.SETTLE_ROUND
            assert await _round_state(kit, player) == ["closed"]
        # Recorded with the window's run; a second look finds a settled round no more.
        summary = await run_ledger(kit.app[keys.PG_POOL], OPERATOR, *window, later, settled=findings)
        assert [(d.kind, o) for d, o in zip(summary.differences, summary.outcomes, strict=True)] == [
            (Kind.STUCK_ROUND, RULES[provider])
        ]
        again = await stuck.settle(OPERATOR, *window, later)
        assert len(again) == (1 if RULES[provider] == "reported" else 0)
        await _after(kit, provider, player)


async def _after(kit: Kit, provider: str, player: SimPlayer) -> None:
    """Check what settling did to the money, and how the provider's late calls are then answered."""
    if provider == "generic":
        # Refunded; the provider's win arriving after the horizon is refused, and moves nothing.
        assert await kit.money(player) == OPENING_MINOR
        late = await kit.sim.win(player, 5_00, "round-1", "win-1", "bet-1")
        assert not late.ok
        assert await kit.money(player) == OPENING_MINOR
    elif provider == "house":
        # The stored outcome was paid; the page's own retry of the round is then a replay.
        balance = await kit.money(player)
        kit.sim.options.max_retries = 5
        replay = await kit.sim.whole_round(player, STAKE_MINOR, "round-1")
        assert replay.ok
        assert await kit.money(player) == balance
        won = await kit.app[keys.PG_POOL].fetchval(
            "SELECT amount_minor FROM croupier.operations WHERE kind = 'credit' AND player_id = $1",
            player.player_id,
        )
        assert balance == OPENING_MINOR - STAKE_MINOR + won
