"""Responsible gaming through the Operator API: limits, blocks and self-exclusion, enforced on bets."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_support import *  # noqa: F403
from api_support import ApiEnv

from gateway import keys
from providers.simulator import Outcome, SimAnswer, SimPlayer
from wallet.errors import Reason

OPENING_MINOR = 1_000_00
OP1_MAX_BET_MINOR = 50_000  # op1's operator-wide cap in api_settings


def limits_path(player_id: str) -> str:
    """Return the limits resource of a player."""
    return f"/v1/players/{player_id}/limits"


def block_path(player_id: str) -> str:
    """Return the block resource of a player."""
    return f"/v1/players/{player_id}/block"


def later(days: float) -> str:
    """Return an RFC 3339 moment some days from now."""
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


async def player(
    api: ApiEnv, operator: str = "op1", player_id: str | None = None, currency: str = "EUR"
) -> SimPlayer:
    """Fund a player on the ledger and open a generic-provider session for it."""
    player_id = player_id or api.unique("p")
    await api.open_player(operator, player_id, OPENING_MINOR, currency)
    return await session(api, operator, player_id, currency)


async def session(api: ApiEnv, operator: str, player_id: str, currency: str = "EUR") -> SimPlayer:
    """Open another session for a player (as a launch would), and return the player with its token."""
    opened = await api.app[keys.SESSIONS].create(operator, player_id, currency, "generic", "g1")
    return SimPlayer(operator, player_id, currency, opened.token)


async def bet(api: ApiEnv, who: SimPlayer, amount_minor: int, tx: str | None = None) -> SimAnswer:
    """Place a bet in a new round."""
    return await api.generic.bet(who, amount_minor, api.unique("r"), tx or api.unique("b"))


async def balance(api: ApiEnv, who: SimPlayer) -> int:
    """Return the player's balance on the ledger backend."""
    value = await api.app[keys.PG_POOL].fetchval(
        "SELECT balance_minor FROM croupier.accounts"
        " WHERE operator = $1 AND player_id = $2 AND currency = $3",
        who.operator,
        who.player_id,
        who.currency,
    )
    return int(value)


def refused(answer: SimAnswer, reason: Reason) -> bool:
    """Return whether a bet was refused with the generic protocol's code for a reason."""
    return answer.outcome is Outcome.REFUSED and answer.native_code == reason.value.upper()


async def test_get_answers_the_operator_defaults_for_a_player_with_none_of_its_own(api: ApiEnv) -> None:
    """A player never configured has the operator's defaults: op1's EUR bet cap, no block, no loss limit."""
    reply = await api.as_("op1").get(limits_path("new-player"))
    assert reply.status == 200
    assert reply.body == {
        "player_id": "new-player",
        "currency": "EUR",
        "max_bet_minor": OP1_MAX_BET_MINOR,
        "loss_limit_minor": None,
        "loss_period": "day",
        "session_limit_s": None,
        "reality_check_s": None,
        "block": None,
        "loss_in_period_minor": None,
    }
    usd = await api.as_("op1").get(limits_path("new-player"), params={"currency": "USD"})
    assert (usd.body["currency"], usd.body["max_bet_minor"]) == ("USD", None)


async def test_put_limits_round_trips_and_answers_the_limits_in_force(api: ApiEnv) -> None:
    """Every limit set is answered by the PUT and by a later GET, with the loss of the period so far."""
    body = {
        "currency": "EUR",
        "max_bet_minor": 2_00,
        "loss_limit_minor": 50_00,
        "loss_period": "week",
        "session_limit_s": 3600,
        "reality_check_s": 600,
    }
    put = await api.as_("op1").put(limits_path("p1"), body)
    assert put.status == 200
    expected = {"player_id": "p1", **body, "block": None, "loss_in_period_minor": 0}
    assert put.body == expected
    assert (await api.as_("op1", "jwt").get(limits_path("p1"))).body == expected


async def test_put_changes_only_the_fields_sent_and_a_null_restores_the_default(api: ApiEnv) -> None:
    """Fields left out keep their value; a null clears the player's own value back to the operator's."""
    client = api.as_("op1")
    await client.put(limits_path("p1"), {"currency": "EUR", "max_bet_minor": 3_00, "reality_check_s": 900})
    kept = await client.put(limits_path("p1"), {"loss_period": "month"})
    assert (kept.body["max_bet_minor"], kept.body["reality_check_s"]) == (3_00, 900)
    cleared = await client.put(limits_path("p1"), {"max_bet_minor": None, "reality_check_s": None})
    assert cleared.body["max_bet_minor"] == OP1_MAX_BET_MINOR
    assert cleared.body["reality_check_s"] is None
    assert cleared.body["loss_period"] == "month"


async def test_a_player_bet_limit_above_the_operator_cap_leaves_the_cap_in_force(api: ApiEnv) -> None:
    """The operator's max bet caps every player: the lower of the two is answered and enforced."""
    reply = await api.as_("op1").put(
        limits_path("p1"), {"currency": "EUR", "max_bet_minor": 10 * OP1_MAX_BET_MINOR}
    )
    assert reply.body["max_bet_minor"] == OP1_MAX_BET_MINOR


@pytest.mark.parametrize(
    "body",
    [
        {"max_bet_minor": 1_00},
        {"loss_limit_minor": 1_00, "currency": None},
        {"currency": "EUR", "max_bet_minor": -1},
        {"currency": "EUR", "max_bet_minor": 1.5},
        {"currency": "EUR", "max_bet_minor": "100"},
        {"currency": "EUR", "loss_limit_minor": True},
        {"currency": "eur", "max_bet_minor": 1_00},
        {"currency": "ZZZ", "max_bet_minor": 1_00},
        {"loss_period": "year"},
        {"session_limit_s": 59},
        {"reality_check_s": 86_401},
        {"colour": "red"},
    ],
)
async def test_invalid_limits_are_refused_and_nothing_is_written(api: ApiEnv, body: dict[str, Any]) -> None:
    """A malformed or incoherent body is a 400 naming the problem, and no row is written."""
    reply = await api.as_("op1").put(limits_path("p1"), body, check_request=False)
    assert reply.status == 400
    assert reply.body["code"] == "invalid_request"
    assert await api.app[keys.PG_POOL].fetchval("SELECT count(*) FROM croupier.player_limits") == 0


async def test_changing_the_currency_needs_the_amount_limits_restated(api: ApiEnv) -> None:
    """Amounts mean nothing in another currency: a currency change alone is refused and changes nothing."""
    client = api.as_("op1")
    await client.put(limits_path("p1"), {"currency": "EUR", "max_bet_minor": 1_00})
    reply = await client.put(limits_path("p1"), {"currency": "USD"})
    assert reply.status == 400
    assert "max_bet_minor" in reply.body["detail"]
    after = await client.get(limits_path("p1"))
    assert (after.body["currency"], after.body["max_bet_minor"]) == ("EUR", 1_00)
    moved = await client.put(limits_path("p1"), {"currency": "USD", "max_bet_minor": 2_00})
    assert (moved.body["currency"], moved.body["max_bet_minor"]) == ("USD", 2_00)


async def test_a_block_ends_every_session_of_the_player_at_once(api: ApiEnv) -> None:
    """Blocking ends the player's real and demo sessions before the answer; other players keep theirs."""
    sessions = api.app[keys.SESSIONS]
    real = await player(api, player_id="p1")
    demo = await sessions.create("op1.demo", "p1", "EUR", "generic", "g1", mode="demo")
    bystander = await player(api, player_id="p2")
    reply = await api.as_("op1").put(block_path("p1"), {"state": "blocked", "reason": "operator review"})
    assert reply.status == 200
    assert reply.body["block"]["state"] == "blocked"
    assert reply.body["block"]["reason"] == "operator review"
    assert reply.body["block"]["until"] is None
    assert await sessions.get(real.token) is None
    assert await sessions.get(demo.token) is None
    assert await sessions.get(bystander.token) is not None


async def test_a_blocked_player_bets_are_refused_but_wins_and_refunds_are_paid(api: ApiEnv) -> None:
    """While blocked, new bets are refused (and that refusal replays); owed wins and refunds are paid."""
    p1 = await player(api, player_id="p1")
    won_round, refunded_round, refunded_tx = api.unique("r"), api.unique("r"), api.unique("b")
    assert (await api.generic.bet(p1, 1_00, won_round, api.unique("b"))).ok
    assert (await api.generic.bet(p1, 2_00, refunded_round, refunded_tx)).ok
    await api.as_("op1").put(block_path("p1"), {"state": "blocked"})

    refused_round, refused_tx = api.unique("r"), api.unique("b")
    # Its session ended with the block, yet the reason told is the block.
    assert refused(await api.generic.bet(p1, 1_00, refused_round, refused_tx), Reason.PLAYER_BLOCKED)
    raced = await session(api, "op1", "p1")  # a launch that raced the block
    assert refused(await bet(api, raced, 1_00), Reason.PLAYER_BLOCKED)
    assert (await api.generic.win(p1, 5_00, won_round, api.unique("w"), "")).ok
    assert (await api.generic.rollback(p1, refunded_tx, refunded_round, api.unique("rb"), 2_00)).ok
    assert await balance(api, p1) == OPENING_MINOR - 1_00 + 5_00

    lifted = await api.as_("op1").delete(block_path("p1"))
    assert (lifted.status, lifted.body["block"]) == (200, None)
    fresh = await session(api, "op1", "p1")
    assert (await bet(api, fresh, 1_00)).ok
    # The refused bet's id stays refused: a retry after the unblock replays the stored refusal.
    assert refused(await api.generic.bet(fresh, 1_00, refused_round, refused_tx), Reason.PLAYER_BLOCKED)
    assert await balance(api, p1) == OPENING_MINOR - 2_00 + 5_00


async def test_a_block_whose_until_has_passed_is_no_longer_in_force(api: ApiEnv) -> None:
    """A block with an end stops refusing bets once the end passes; there is then nothing to lift."""
    p1 = await player(api, player_id="p1")
    reply = await api.as_("op1").put(block_path("p1"), {"state": "blocked", "until": later(1)})
    assert reply.body["block"]["until"] is not None
    await api.app[keys.PG_POOL].execute(
        "UPDATE croupier.player_limits SET blocked_until = now() - interval '1 second' WHERE player_id = 'p1'"
    )
    assert (await api.as_("op1").get(limits_path("p1"))).body["block"] is None
    assert (await bet(api, await session(api, "op1", "p1"), 1_00)).ok
    assert (await api.as_("op1").delete(block_path("p1"))).status == 404
    assert await balance(api, p1) == OPENING_MINOR - 1_00


@pytest.mark.parametrize(
    "body",
    [
        {"state": "self_excluded"},
        {"state": "self_excluded", "until": "2001-01-01T00:00:00Z"},
        {"state": "blocked", "until": "2001-01-01T00:00:00Z"},
        {"state": "blocked", "until": "tomorrow"},
        {"state": "paused"},
        {"reason": "no state"},
        {"state": "blocked", "reason": "x" * 257},
        {"state": "blocked", "note": "unknown field"},
    ],
)
async def test_invalid_blocks_are_refused_and_nothing_is_written(api: ApiEnv, body: dict[str, Any]) -> None:
    """A self-exclusion needs a future end, a block's end must be future, and bad fields are refused."""
    p1 = await player(api, player_id="p1")
    reply = await api.as_("op1").put(block_path("p1"), body, check_request=False)
    assert (reply.status, reply.body["code"]) == (400, "invalid_request")
    assert await api.app[keys.PG_POOL].fetchval("SELECT count(*) FROM croupier.player_limits") == 0
    assert await api.app[keys.SESSIONS].get(p1.token) is not None


async def test_a_self_exclusion_cannot_be_lifted_or_shortened_before_its_end(api: ApiEnv) -> None:
    """Lifting a self-exclusion early is a 409, as is a block or an earlier end over it; extending works."""
    p1 = await player(api, player_id="p1")
    client = api.as_("op1")
    until = later(30)
    reply = await client.put(block_path("p1"), {"state": "self_excluded", "until": until, "reason": "player"})
    assert reply.body["block"]["state"] == "self_excluded"
    since = reply.body["block"]["since"]
    assert (await client.delete(block_path("p1"))).status == 409
    assert (await client.put(block_path("p1"), {"state": "blocked"})).status == 409
    shorter = {"state": "self_excluded", "until": later(10)}
    assert (await client.put(block_path("p1"), shorter)).status == 409
    longer = await client.put(block_path("p1"), {"state": "self_excluded", "until": later(60)})
    assert longer.status == 200
    assert longer.body["block"]["since"] == since  # the exclusion began when it began
    assert refused(await bet(api, await session(api, "op1", "p1"), 1_00), Reason.PLAYER_BLOCKED)
    assert await balance(api, p1) == OPENING_MINOR


async def test_lifting_a_block_that_does_not_exist_is_404(api: ApiEnv) -> None:
    """DELETE on a player with no block in force answers 404."""
    assert (await api.as_("op1").delete(block_path("never-blocked"))).status == 404


async def test_a_bet_above_the_player_bet_limit_is_refused(api: ApiEnv) -> None:
    """The player's own max bet refuses a bigger bet in its currency; another currency is not held to it."""
    p1 = await player(api, player_id="p1")
    await api.as_("op1").put(limits_path("p1"), {"currency": "EUR", "max_bet_minor": 5_00})
    assert refused(await bet(api, p1, 5_01), Reason.LIMIT_EXCEEDED)
    assert (await bet(api, p1, 5_00)).ok
    in_usd = await player(api, player_id="p1", currency="USD")
    assert (await bet(api, in_usd, 6_00)).ok
    assert await balance(api, p1) == OPENING_MINOR - 5_00


async def test_a_loss_limit_refuses_bets_past_it_and_wins_and_refunds_free_room(api: ApiEnv) -> None:
    """Bets pass until the period's net loss would exceed the limit; a win or a refund makes room again."""
    p1 = await player(api, player_id="p1")
    client = api.as_("op1")
    await client.put(limits_path("p1"), {"currency": "EUR", "loss_limit_minor": 10_00, "loss_period": "day"})
    won_round = api.unique("r")
    assert (await api.generic.bet(p1, 4_00, won_round, api.unique("b"))).ok
    refund_round, refund_tx = api.unique("r"), api.unique("b")
    assert (await api.generic.bet(p1, 4_00, refund_round, refund_tx)).ok
    assert refused(await bet(api, p1, 4_00), Reason.LIMIT_EXCEEDED)
    assert (await bet(api, p1, 2_00)).ok  # exactly at the limit
    assert (await client.get(limits_path("p1"))).body["loss_in_period_minor"] == 10_00
    assert refused(await bet(api, p1, 1), Reason.LIMIT_EXCEEDED)

    assert (await api.generic.win(p1, 3_00, won_round, api.unique("w"), "")).ok
    assert (await client.get(limits_path("p1"))).body["loss_in_period_minor"] == 7_00
    assert (await api.generic.rollback(p1, refund_tx, refund_round, api.unique("rb"), 4_00)).ok
    assert (await client.get(limits_path("p1"))).body["loss_in_period_minor"] == 3_00
    assert (await bet(api, p1, 7_00)).ok
    assert refused(await bet(api, p1, 1), Reason.LIMIT_EXCEEDED)
    assert await balance(api, p1) == OPENING_MINOR - 10_00


async def test_concurrent_bets_never_take_the_loss_past_the_limit(api: ApiEnv) -> None:
    """Many bets of one player at the same moment: exactly as many pass as fit under the loss limit."""
    p1 = await player(api, player_id="p1")
    await api.as_("op1").put(limits_path("p1"), {"currency": "EUR", "loss_limit_minor": 10_00})
    answers = await asyncio.gather(*(bet(api, p1, 3_00) for _ in range(12)))
    assert sum(a.ok for a in answers) == 3
    assert all(a.ok or refused(a, Reason.LIMIT_EXCEEDED) for a in answers)
    assert await balance(api, p1) == OPENING_MINOR - 9_00
    assert (await api.as_("op1").get(limits_path("p1"))).body["loss_in_period_minor"] == 9_00


async def test_operators_limits_and_blocks_are_their_own(api: ApiEnv) -> None:
    """op2's block of its 'p1' leaves op1's 'p1' playing, and op2 never sees op1's limits or block."""
    op1_p1 = await player(api, "op1", "p1")
    op2_p1 = await player(api, "op2", "p1")
    await api.as_("op1").put(limits_path("p1"), {"currency": "EUR", "max_bet_minor": 7_00})

    blocked = await api.as_("op2").put(block_path("p1"), {"state": "blocked"})
    assert blocked.body["block"]["state"] == "blocked"
    assert blocked.body["max_bet_minor"] == OP1_MAX_BET_MINOR  # op2's own p1: the operator's cap only
    assert await api.app[keys.SESSIONS].get(op1_p1.token) is not None
    assert await api.app[keys.SESSIONS].get(op2_p1.token) is None
    assert (await bet(api, op1_p1, 1_00)).ok
    assert refused(await bet(api, await session(api, "op2", "p1"), 1_00), Reason.PLAYER_BLOCKED)

    seen_by_op1 = await api.as_("op1").get(limits_path("p1"))
    assert (seen_by_op1.body["block"], seen_by_op1.body["max_bet_minor"]) == (None, 7_00)
    assert (await api.as_("op1").delete(block_path("p1"))).status == 404
    assert (await api.as_("op2").get(limits_path("p1"))).body["block"]["state"] == "blocked"


async def test_the_limits_api_needs_credentials(api: ApiEnv) -> None:
    """Without credentials, reading or writing limits is a 401 and nothing is written."""
    assert (await api.as_("op1", "none").get(limits_path("p1"), check_request=False)).status == 401
    reply = await api.as_("op1", "none").put(block_path("p1"), {"state": "blocked"}, check_request=False)
    assert reply.status == 401
    assert await api.app[keys.PG_POOL].fetchval("SELECT count(*) FROM croupier.player_limits") == 0


async def test_limits_for_an_unknown_currency_are_refused(api: ApiEnv) -> None:
    """GET with a currency the gateway does not know, or an unknown query parameter, is a 400."""
    client = api.as_("op1")
    assert (await client.get(limits_path("p1"), params={"currency": "ZZZ"})).status == 400
    assert (await client.get(limits_path("p1"), params={"colour": "red"}, check_request=False)).status == 400
