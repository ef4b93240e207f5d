"""Free-round campaigns through the Operator API, with wins paid by the providers' own payouts.

Every API call is checked against the OpenAPI document by the `api` fixture's client; wins are
sent the way each provider sends them (its simulator, or a signed request), and progress is read
back through the API.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from api_support import *  # noqa: F403
from api_support import ApiEnv

from gateway import keys
from providers import registry
from providers.evolution.simulator import EvolutionSimulator
from providers.pragmatic.simulator import PragmaticSimulator
from providers.simulator import Outcome, ProviderSimulator, SimPlayer
from providers.softswiss.simulator import SoftswissSimulator

EUR = "EUR"
PRAGMATIC_GAME = "vs20olympgate"
EVOLUTION_GAME = "vctlz20yfnmp1ylr"
SOFTSWISS_GAME = "softswiss:demo-slot"
Sim = TypeVar("Sim", bound=ProviderSimulator)


def later(days: int = 7) -> str:
    """Return an RFC 3339 moment some days from now."""
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def request(**overrides: Any) -> dict[str, Any]:
    """Return a valid generic campaign request; overrides replace or (with None) drop fields."""
    body: dict[str, Any] = {
        "name": "Welcome spins",
        "provider": "generic",
        "game_ids": ["g1"],
        "player_ids": ["p1", "p2"],
        "currency": EUR,
        "rounds": 10,
        "bet_minor": 20,
        "expires_at": later(),
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


async def create(api: ApiEnv, operator: str = "op1", **overrides: Any) -> dict[str, Any]:
    """Create a campaign and return it."""
    reply = await api.as_(operator).post("/v1/campaigns", request(**overrides))
    assert reply.status == 201, reply.body
    return dict(reply.body)


async def detail(api: ApiEnv, campaign_id: str, operator: str = "op1") -> dict[str, Any]:
    """Return a campaign with its players' progress."""
    reply = await api.as_(operator).get(f"/v1/campaigns/{campaign_id}")
    assert reply.status == 200, reply.body
    return dict(reply.body)


def by_player(campaign: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return a campaign's player progress keyed by player id, without the id."""
    return {
        p["player_id"]: {k: v for k, v in p.items() if k != "player_id"} for p in campaign["player_progress"]
    }


async def balance(api: ApiEnv, operator: str, player_id: str) -> int:
    """Return a player's balance on the ledger backend."""
    value = await api.app[keys.PG_POOL].fetchval(
        "SELECT balance_minor FROM croupier.accounts"
        " WHERE operator = $1 AND player_id = $2 AND currency = $3",
        operator,
        player_id,
        EUR,
    )
    return int(value)


async def free_round(
    api: ApiEnv, player_id: str, round_id: str, amount: str, campaign_id: str | None, operator: str = "op1"
) -> None:
    """Pay a generic free-round win with no bet, naming a campaign."""
    body = {
        "operator": operator,
        "player_id": player_id,
        "currency": EUR,
        "amount": amount,
        "round_id": round_id,
        "transaction_id": api.unique("fr"),
        "credit_kind": "freeround",
        "campaign_id": campaign_id,
    }
    answer = await api.generic_call("credit", {k: v for k, v in body.items() if v is not None})
    assert answer.ok, answer.body


def simulator(api: ApiEnv, cls: type[Sim]) -> Sim:
    """Return a provider's simulator, configured as the gateway's provider is."""
    config = registry.load(cls.provider).sample_config()
    return cls(str(api.client.make_url("/")), api.client.session, config)


async def sim_player(api: ApiEnv, provider: str, game_id: str, player_id: str) -> SimPlayer:
    """Open a funded op1 player with a session on a provider's game."""
    await api.open_player("op1", player_id, 10_000)
    session = await api.app[keys.SESSIONS].create("op1", player_id, EUR, provider, game_id)
    return SimPlayer("op1", player_id, EUR, session.token)


# Creating, reading, listing and cancelling.


async def test_a_campaign_is_created_shown_and_listed(api: ApiEnv) -> None:
    """A new campaign has a minted id, is active with no progress, and every player has all rounds left."""
    created = await create(api)
    assert created["campaign_id"].startswith("fr_")
    assert len(created["campaign_id"]) == 23
    assert (created["state"], created["players"], created["cancelled_at"]) == ("active", 2, None)
    assert created["progress"] == {"rounds_played": 0, "wins_count": 0, "wins_minor": 0}
    shown = await detail(api, created["campaign_id"])
    assert {k: v for k, v in shown.items() if k != "player_progress"} == created
    assert by_player(shown) == {
        p: {"rounds_played": 0, "wins_count": 0, "wins_minor": 0, "rounds_left": 10, "last_win_at": None}
        for p in ("p1", "p2")
    }
    # A JWT client assertion reaches the same campaigns as a signed request.
    listed = await api.as_("op1", "jwt").get("/v1/campaigns")
    assert listed.body == {"campaigns": [created]}


@pytest.mark.parametrize(
    ("overrides", "detail_part"),
    [
        ({"colour": "red"}, "unknown fields: colour"),
        ({"rounds": None}, "rounds is required"),
        ({"rounds": 0}, "rounds must be"),
        ({"rounds": 10_001}, "rounds must be"),
        ({"bet_minor": "20"}, "bet_minor must be"),
        ({"bet_minor": 1.5}, "bet_minor must be"),
        ({"game_ids": ["g1", "nope"]}, "not in generic's catalogue: nope"),
        ({"game_ids": []}, "game_ids must be a list"),
        ({"game_ids": "g1"}, "game_ids must be a list"),
        ({"player_ids": ["p1", "p1"]}, "must not repeat"),
        ({"player_ids": ["p1", 7]}, "player_ids must be a string"),
        ({"currency": "XXQ"}, "currency XXQ is not one"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at must be in the future"),
        ({"expires_at": "2999-01-01T00:00:00"}, "time zone offset"),
        ({"expires_at": None}, "expires_at is required"),
        ({"name": "n" * 129}, "name must be"),
    ],
)
async def test_bad_campaign_requests_are_400_and_write_nothing(
    api: ApiEnv, overrides: dict[str, Any], detail_part: str
) -> None:
    """Each malformed field is a 400 naming it, and no campaign or player row is written."""
    reply = await api.as_("op1").post("/v1/campaigns", request(**overrides), check_request=False)
    assert (reply.status, reply.body["code"]) == (400, "invalid_request")
    assert detail_part in reply.body["detail"]
    pool = api.app[keys.PG_POOL]
    written = await pool.fetchval(
        "SELECT (SELECT count(*) FROM croupier.campaigns) + (SELECT count(*) FROM croupier.campaign_players)"
    )
    assert written == 0


async def test_an_unknown_provider_is_404(api: ApiEnv) -> None:
    """A campaign for a provider the gateway does not have is 404 not_found."""
    reply = await api.as_("op1").post("/v1/campaigns", request(provider="nosuchstudio"))
    assert (reply.status, reply.body["code"]) == (404, "not_found")
    assert (await api.as_("op1").get("/v1/campaigns")).body == {"campaigns": []}


async def test_a_provider_without_free_rounds_gets_no_campaign(api: ApiEnv) -> None:
    """The in-house games pay no free rounds yet: a campaign for them is refused, not left idle."""
    reply = await api.as_("op1").post("/v1/campaigns", request(provider="house", game_ids=["house:slot"]))
    assert (reply.status, reply.body["code"]) == (409, "game_unavailable")
    assert (await api.as_("op1").get("/v1/campaigns")).body == {"campaigns": []}


async def test_cancel_once_then_conflict(api: ApiEnv) -> None:
    """Cancelling an active campaign records when; cancelling it again is 409 conflict."""
    campaign_id = (await create(api))["campaign_id"]
    first = await api.as_("op1").post(f"/v1/campaigns/{campaign_id}/cancel")
    assert (first.status, first.body["state"]) == (200, "cancelled")
    assert first.body["cancelled_at"] is not None
    again = await api.as_("op1").post(f"/v1/campaigns/{campaign_id}/cancel")
    assert (again.status, again.body["code"]) == (409, "conflict")
    assert (await detail(api, campaign_id))["cancelled_at"] == first.body["cancelled_at"]


async def test_an_expired_campaign_reads_expired_and_cannot_be_cancelled(api: ApiEnv) -> None:
    """Past its expiry a campaign is reported expired, listed as such, and a cancel is 409."""
    campaign_id = (await create(api))["campaign_id"]
    await api.app[keys.PG_POOL].execute(
        "UPDATE croupier.campaigns SET expires_at = now() - interval '1 minute' WHERE id = $1", campaign_id
    )
    assert (await detail(api, campaign_id))["state"] == "expired"
    cancel = await api.as_("op1").post(f"/v1/campaigns/{campaign_id}/cancel")
    assert (cancel.status, cancel.body["code"]) == (409, "conflict")
    expired = await api.as_("op1").get("/v1/campaigns", params={"state": "expired"})
    active = await api.as_("op1").get("/v1/campaigns", params={"state": "active"})
    assert [c["campaign_id"] for c in expired.body["campaigns"]] == [campaign_id]
    assert active.body["campaigns"] == []


async def test_listing_is_newest_first_and_filters(api: ApiEnv) -> None:
    """The list is newest first and filters by state, provider and player."""
    first = await create(api, player_ids=["p1"])
    second = await create(api, provider="pragmatic", game_ids=[PRAGMATIC_GAME], player_ids=["p2"])
    third = await create(api, player_ids=["p1", "p3"])
    await api.as_("op1").post(f"/v1/campaigns/{third['campaign_id']}/cancel")
    client = api.as_("op1")

    async def ids(**params: str) -> list[str]:
        reply = await client.get("/v1/campaigns", params=params)
        assert reply.status == 200
        return [c["campaign_id"] for c in reply.body["campaigns"]]

    one, two, three = first["campaign_id"], second["campaign_id"], third["campaign_id"]
    assert await ids() == [three, two, one]
    assert await ids(provider="generic") == [three, one]
    assert await ids(player_id="p1") == [three, one]
    assert await ids(player_id="p3", state="active") == []
    assert await ids(state="cancelled") == [three]
    assert await ids(state="active", provider="pragmatic") == [two]
    bad = await client.get("/v1/campaigns", params={"state": "paused"}, check_request=False)
    assert bad.status == 400


async def test_another_operator_cannot_see_or_cancel_a_campaign(api: ApiEnv) -> None:
    """op2 gets 404 for op1's campaign on show and cancel, sees none listed, and it stays active."""
    campaign_id = (await create(api))["campaign_id"]
    other = api.as_("op2")
    shown = await other.get(f"/v1/campaigns/{campaign_id}")
    cancelled = await other.post(f"/v1/campaigns/{campaign_id}/cancel")
    assert (shown.status, shown.body["code"]) == (404, "not_found")
    assert (cancelled.status, cancelled.body["code"]) == (404, "not_found")
    assert (await other.get("/v1/campaigns", params={"player_id": "p1"})).body == {"campaigns": []}
    assert (await detail(api, campaign_id))["state"] == "active"


async def test_an_unknown_campaign_is_404(api: ApiEnv) -> None:
    """Showing or cancelling a campaign that does not exist is 404."""
    assert (await api.as_("op1").get("/v1/campaigns/fr_nope")).status == 404
    assert (await api.as_("op1").post("/v1/campaigns/fr_nope/cancel")).status == 404


# Progress from the ledger.


async def test_progress_counts_distinct_free_rounds_and_sums_wins(api: ApiEnv) -> None:
    """Free-round credits without bets are paid; each player's distinct rounds and wins make the progress."""
    for player in ("p1", "p2"):
        await api.open_player("op1", player, 1_000)
    campaign_id = (await create(api))["campaign_id"]
    await free_round(api, "p1", "r1", "1.00", campaign_id)
    await free_round(api, "p1", "r1", "0.50", campaign_id)  # a second win in the same round
    await free_round(api, "p1", "r2", "0.00", campaign_id)  # a lost free round still counts
    await free_round(api, "p2", "r9", "3.00", campaign_id)
    assert (await balance(api, "op1", "p1"), await balance(api, "op1", "p2")) == (1_150, 1_300)
    shown = await detail(api, campaign_id)
    assert shown["progress"] == {"rounds_played": 3, "wins_count": 3, "wins_minor": 450}
    players = by_player(shown)
    assert {
        p: (v["rounds_played"], v["wins_count"], v["wins_minor"], v["rounds_left"])
        for p, v in players.items()
    } == {
        "p1": (2, 2, 150, 8),
        "p2": (1, 1, 300, 9),
    }
    assert players["p1"]["last_win_at"] is not None
    listed = await api.as_("op1").get("/v1/campaigns")
    assert listed.body["campaigns"][0]["progress"] == shown["progress"]


async def test_a_win_after_cancel_is_paid_and_counted(api: ApiEnv) -> None:
    """Money owed is never refused: a free-round win after the cancel is paid and counts."""
    await api.open_player("op1", "p1", 1_000)
    campaign_id = (await create(api))["campaign_id"]
    await api.as_("op1").post(f"/v1/campaigns/{campaign_id}/cancel")
    await free_round(api, "p1", "late-round", "2.00", campaign_id)
    assert await balance(api, "op1", "p1") == 1_200
    shown = await detail(api, campaign_id)
    assert (shown["state"], shown["progress"]) == (
        "cancelled",
        {"rounds_played": 1, "wins_count": 1, "wins_minor": 200},
    )


async def test_wins_count_only_for_the_campaigns_own_operator_and_players(api: ApiEnv) -> None:
    """A win naming another operator's campaign, or an unknown one, is paid but counts nowhere."""
    await api.open_player("op1", "p1", 1_000)
    await api.open_player("op2", "p1", 1_000)
    await api.open_player("op1", "outsider", 1_000)
    campaign_id = (await create(api))["campaign_id"]
    await free_round(api, "p1", "r1", "5.00", campaign_id, operator="op2")
    await free_round(api, "outsider", "r2", "1.00", campaign_id)
    await free_round(api, "p1", "r3", "1.00", "fr_unknown")
    assert await balance(api, "op2", "p1") == 1_500
    assert (await balance(api, "op1", "outsider"), await balance(api, "op1", "p1")) == (1_100, 1_100)
    assert (await detail(api, campaign_id))["progress"] == {
        "rounds_played": 0,
        "wins_count": 0,
        "wins_minor": 0,
    }


# The providers' own free-round and promo payouts.


async def test_pragmatic_bonus_code_wins_tie_to_the_campaign(api: ApiEnv) -> None:
    """result.html with the campaign as bonusCode counts free rounds; bonusWin and promoWin add wins only."""
    campaign_id = (await create(api, provider="pragmatic", game_ids=[PRAGMATIC_GAME], player_ids=["pp1"]))[
        "campaign_id"
    ]
    sim = simulator(api, PragmaticSimulator)
    player = await sim_player(api, "pragmatic", PRAGMATIC_GAME, "pp1")
    for n, minor in enumerate((120, 0)):
        answer = await sim.win(
            player, minor, f"frb-r{n}", f"ref-{n}", "", kind="freeround", campaign_id=campaign_id
        )
        assert answer.outcome is Outcome.OK, answer.raw
    total = await sim.win(player, 300, "frb-end", "ref-total", "", kind="bonus", campaign_id=campaign_id)
    promo = await sim.win(player, 50, "promo", "ref-promo", "", kind="promo", campaign_id=campaign_id)
    assert (total.outcome, promo.outcome) == (Outcome.OK, Outcome.OK)
    assert await balance(api, "op1", "pp1") == 10_000 + 120 + 300 + 50
    players = by_player(await detail(api, campaign_id))
    assert players["pp1"]["rounds_played"] == 2
    assert (players["pp1"]["wins_count"], players["pp1"]["wins_minor"], players["pp1"]["rounds_left"]) == (
        3,
        470,
        8,
    )


async def test_evolution_voucher_promo_payouts_tie_to_the_campaign(api: ApiEnv) -> None:
    """promo_payout with the campaign as voucherId is a free-round win of the campaign; a repeat pays once."""
    campaign_id = (await create(api, provider="evolution", game_ids=[EVOLUTION_GAME], player_ids=["ev1"]))[
        "campaign_id"
    ]
    sim = simulator(api, EvolutionSimulator)
    player = await sim_player(api, "evolution", EVOLUTION_GAME, "ev1")
    for promo_id in ("promo-1", "promo-2", "promo-1"):
        answer = await sim.win(player, 250, "fr", promo_id, "", kind="freeround", campaign_id=campaign_id)
        assert answer.outcome is Outcome.OK, answer.raw
    assert await balance(api, "op1", "ev1") == 10_000 + 500
    assert (await detail(api, campaign_id))["progress"] == {
        "rounds_played": 2,
        "wins_count": 2,
        "wins_minor": 500,
    }


async def test_softswiss_freespins_pays_the_total_to_the_issues_only_player(api: ApiEnv) -> None:
    """A /freespins report for a one-player campaign pays its total once to that player and counts it."""
    campaign_id = (await create(api, provider="softswiss", game_ids=[SOFTSWISS_GAME], player_ids=["ss1"]))[
        "campaign_id"
    ]
    await api.open_player("op1", "ss1", 10_000)
    sim = simulator(api, SoftswissSimulator)
    for _ in range(2):  # the provider repeats its report until it gets a definite answer
        answer = await sim.freespins(campaign_id, "played", 1_500)
        assert answer.outcome is Outcome.OK, answer.raw
    assert await balance(api, "op1", "ss1") == 11_500
    shown = await detail(api, campaign_id)
    assert shown["progress"] == {"rounds_played": 1, "wins_count": 1, "wins_minor": 1_500}


async def test_softswiss_freespins_of_a_shared_issue_needs_the_user(api: ApiEnv) -> None:
    """With several players, a report naming the user pays that player; one naming nobody pays nobody."""
    campaign_id = (await create(api, provider="softswiss", game_ids=[SOFTSWISS_GAME], player_ids=["a", "b"]))[
        "campaign_id"
    ]
    sim = simulator(api, SoftswissSimulator)
    players = {name: await sim_player(api, "softswiss", SOFTSWISS_GAME, name) for name in ("a", "b")}
    anonymous = await sim.freespins(campaign_id, "played", 999)
    assert anonymous.outcome is Outcome.OK
    assert (await balance(api, "op1", "a"), await balance(api, "op1", "b")) == (10_000, 10_000)
    await sim.freespins(campaign_id, "played", 400, players["a"])
    await sim.freespins(campaign_id, "expired", 0, players["b"])
    assert (await balance(api, "op1", "a"), await balance(api, "op1", "b")) == (10_400, 10_000)
    shown = by_player(await detail(api, campaign_id))
    assert (shown["a"]["rounds_played"], shown["a"]["wins_minor"], shown["b"]["wins_count"]) == (1, 400, 0)
