"""Operator API sessions: launch for real and demo play, one session per game, ending and isolation."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from api_support import *  # noqa: F403
from api_support import ApiEnv

from gateway import keys

OPENING = 100_000


def launch(player_id: str = "p1", game_id: str = "g1", **extra: Any) -> dict[str, Any]:
    """Return a launch body for a generic game."""
    return {"player_id": player_id, "currency": "EUR", "provider": "generic", "game_id": game_id, **extra}


def query_of(url: str) -> dict[str, str]:
    """Return a launch URL's query parameters."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def bet(
    api: ApiEnv, token: str, *, operator: str = "op1", player_id: str = "p1", currency: str = "EUR"
) -> Any:
    """Send a generic debit of 1.00 with a session token, as the game would."""
    return await api.generic_call(
        "debit",
        {
            "operator": operator,
            "player_id": player_id,
            "currency": currency,
            "session_token": token,
            "transaction_id": api.unique("tx"),
            "round_id": api.unique("r"),
            "amount": "1.00",
        },
    )


async def balance(api: ApiEnv, operator: str, player_id: str = "p1", currency: str = "EUR") -> int | None:
    """Return a ledger balance, or None when the account does not exist."""
    value = await api.app[keys.PG_POOL].fetchval(
        "SELECT balance_minor FROM croupier.accounts"
        " WHERE operator = $1 AND player_id = $2 AND currency = $3",
        operator,
        player_id,
        currency,
    )
    return None if value is None else int(value)


async def test_a_real_launch_returns_a_working_session(api: ApiEnv) -> None:
    """201 with the session, its token and the provider's URL; the token pays from the operator's wallet."""
    await api.open_player("op1", "p1", OPENING)
    body = launch(country="MT", language="pt-BR", device="mobile", lobby_url="https://casino.example/lobby")
    reply = await api.as_("op1").post("/v1/sessions", body)
    assert reply.status == 201
    session = reply.body
    assert (session["mode"], session["currency"], session["country"], session["language"]) == (
        "real",
        "EUR",
        "MT",
        "pt-BR",
    )
    assert session["ended_sessions"] == []
    lifetime = datetime.fromisoformat(session["expires_at"]) - datetime.fromisoformat(session["created_at"])
    assert round(lifetime.total_seconds()) == api.app[keys.SETTINGS].session_ttl_s
    url = query_of(session["launch_url"])
    assert (url["token"], url["user"], url["mode"], url["device"]) == (
        session["token"],
        "op1:p1",
        "real",
        "mobile",
    )
    assert url["lobby"] == "https://casino.example/lobby"
    stored = await api.app[keys.SESSIONS].get(session["token"])
    assert stored is not None
    assert (stored.session_id, stored.operator, stored.player_id) == (session["session_id"], "op1", "p1")
    assert (await bet(api, session["token"])).ok
    assert await balance(api, "op1") == OPENING - 100


async def test_demo_play_moves_play_money_only(api: ApiEnv) -> None:
    """A demo session pays from op1's play-money ledger; op1's real account is never touched."""
    await api.open_player("op1", "p1", OPENING)
    demo_balance = api.app[keys.SETTINGS].operators["op1"].demo_balance_minor
    reply = await api.as_("op1").post("/v1/sessions", launch(mode="demo"))
    assert (reply.status, reply.body["mode"]) == (201, "demo")
    url = query_of(reply.body["launch_url"])
    assert (url["user"], url["mode"]) == ("op1.demo:p1", "demo")
    answer = await bet(api, reply.body["token"], operator="op1.demo")
    assert answer.ok, answer.body
    assert await balance(api, "op1.demo") == demo_balance - 100
    assert await balance(api, "op1") == OPENING
    # The real wallet refuses the demo token: it is not op1's real session.
    assert not (await bet(api, reply.body["token"])).ok
    # A second demo launch keeps the play money the player has.
    again = await api.as_("op1").post("/v1/sessions", launch(mode="demo"))
    assert again.status == 201
    assert await balance(api, "op1.demo") == demo_balance - 100
    assert await balance(api, "op1") == OPENING


async def test_bad_launches_are_refused_and_write_nothing(api: ApiEnv) -> None:
    """A malformed body or an unknown currency is 400, an unknown game 404; no session, no account."""
    op1 = api.as_("op1")
    bad = [
        {k: v for k, v in launch().items() if k != "currency"},
        launch(currency="XYZ"),
        launch(currency="eur"),
        launch(mode="fun"),
        launch(country="mt"),
        launch(language="english"),
        launch(device="tablet"),
        launch(lobby_url="javascript:alert(1)"),
        launch(player_id=""),
        launch(colour="red"),
        {**launch(), "game_id": 7},
    ]
    for body in bad:
        reply = await op1.post("/v1/sessions", body, check_request=False)
        assert (reply.status, reply.body["code"]) == (400, "invalid_request"), body
    not_json = await op1.post("/v1/sessions", body=b"[1]", check_request=False)
    assert not_json.status == 400
    for body in (launch(game_id="nope"), {**launch(), "provider": "nobody"}):
        reply = await op1.post("/v1/sessions", body)
        assert (reply.status, reply.body["code"]) == (404, "not_found")
    unknown = await op1.post("/v1/sessions", launch(currency="XYZ", mode="demo"), check_request=True)
    assert "XYZ" in unknown.body["detail"]
    assert await api.app[keys.SESSIONS].of_player("op1", "p1") == []
    assert await api.app[keys.PG_POOL].fetchval("SELECT count(*) FROM croupier.accounts") == 0


async def test_a_second_launch_of_a_game_ends_the_first(api: ApiEnv) -> None:
    """One session per player and game: the older token stops working at once; other games are kept."""
    await api.open_player("op1", "p1", OPENING)
    op1 = api.as_("op1")
    first = (await op1.post("/v1/sessions", launch())).body
    other_game = (await op1.post("/v1/sessions", launch(game_id="g2"))).body
    second = (await op1.post("/v1/sessions", launch())).body
    assert second["ended_sessions"] == [first["session_id"]]
    assert other_game["ended_sessions"] == []
    sessions = api.app[keys.SESSIONS]
    assert await sessions.get(first["token"]) is None
    refused = await bet(api, first["token"])
    assert refused.code == "SESSION_EXPIRED"
    assert (await bet(api, second["token"])).ok
    assert await sessions.get(other_game["token"]) is not None
    assert await balance(api, "op1") == OPENING - 100


async def test_launches_at_the_same_moment_still_leave_one_session(api: ApiEnv) -> None:
    """Launches of one game racing each other are serialised: exactly one session survives."""
    op1 = api.as_("op1")
    replies = await asyncio.gather(*(op1.post("/v1/sessions", launch()) for _ in range(6)))
    assert {r.status for r in replies} == {201}
    live = (await op1.get("/v1/sessions", params={"player_id": "p1"})).body["sessions"]
    assert len(live) == 1
    ended = [sid for r in replies for sid in r.body["ended_sessions"]]
    assert sorted([*ended, live[0]["session_id"]]) == sorted(r.body["session_id"] for r in replies)


async def test_sessions_are_listed_oldest_first_and_read_without_their_token(api: ApiEnv) -> None:
    """GET /v1/sessions lists the player's live sessions; GET one returns it, never its token."""
    op1 = api.as_("op1")
    first = (await op1.post("/v1/sessions", launch())).body
    second = (await op1.post("/v1/sessions", launch(game_id="g2"))).body
    await op1.post("/v1/sessions", launch(player_id="p2"))
    listed = await op1.get("/v1/sessions", params={"player_id": "p1"})
    assert [s["session_id"] for s in listed.body["sessions"]] == [first["session_id"], second["session_id"]]
    one = await op1.get(f"/v1/sessions/{first['session_id']}")
    assert one.status == 200
    expected = {k: v for k, v in first.items() if k not in ("token", "launch_url", "ended_sessions")}
    assert one.body == expected
    missing = await op1.get("/v1/sessions", check_request=False)
    assert (missing.status, missing.body["code"]) == (400, "invalid_request")


async def test_delete_ends_a_session_at_once(api: ApiEnv) -> None:
    """DELETE answers 204; the token no longer verifies, a bet with it is refused, a second DELETE is 404."""
    await api.open_player("op1", "p1", OPENING)
    op1 = api.as_("op1")
    session = (await op1.post("/v1/sessions", launch())).body
    path = f"/v1/sessions/{session['session_id']}"
    assert (await op1.delete(path)).status == 204
    assert await api.app[keys.SESSIONS].get(session["token"]) is None
    assert (await bet(api, session["token"])).code == "SESSION_EXPIRED"
    assert (await op1.get(path)).status == 404
    assert (await op1.delete(path)).body["code"] == "not_found"
    assert (await op1.get("/v1/sessions", params={"player_id": "p1"})).body == {"sessions": []}
    assert await balance(api, "op1") == OPENING


async def test_another_operators_sessions_do_not_exist_for_it(api: ApiEnv) -> None:
    """op2 cannot read, end or list op1's sessions, and its own launch for 'p1' ends none of op1's."""
    op1, op2 = api.as_("op1"), api.as_("op2")
    real = (await op1.post("/v1/sessions", launch())).body
    demo = (await op1.post("/v1/sessions", launch(game_id="g1", mode="demo"))).body
    for session in (real, demo):
        path = f"/v1/sessions/{session['session_id']}"
        assert (await op2.get(path)).body["code"] == "not_found"
        assert (await op2.delete(path)).status == 404
    assert (await op2.get("/v1/sessions", params={"player_id": "p1"})).body == {"sessions": []}
    own = await op2.post("/v1/sessions", launch())
    assert own.body["ended_sessions"] == []
    # The demo launch ended op1's real session on the same game (one per game); op2 touched nothing.
    assert demo["ended_sessions"] == [real["session_id"]]
    assert await api.app[keys.SESSIONS].get(demo["token"]) is not None
    assert (await op1.get(f"/v1/sessions/{demo['session_id']}")).status == 200


async def test_jwt_authenticated_calls_launch_and_end_sessions(api: ApiEnv) -> None:
    """An operator authenticated by a JWT client assertion launches, lists and ends its sessions."""
    op1 = api.as_("op1", "jwt")
    session = (await op1.post("/v1/sessions", launch())).body
    listed = await op1.get("/v1/sessions", params={"player_id": "p1"})
    assert [s["session_id"] for s in listed.body["sessions"]] == [session["session_id"]]
    assert (await op1.delete(f"/v1/sessions/{session['session_id']}")).status == 204
    assert (await api.as_("op1").get(f"/v1/sessions/{session['session_id']}")).status == 404


async def test_the_currency_is_locked_to_the_session(api: ApiEnv) -> None:
    """A generic callback naming another currency than its session's is CURRENCY_MISMATCH; nothing moves."""
    await api.open_player("op1", "p1", OPENING)
    await api.open_player("op1", "p1", OPENING, currency="USD")
    session = (await api.as_("op1").post("/v1/sessions", launch())).body
    refused = await bet(api, session["token"], currency="USD")
    assert (refused.ok, refused.code) == (False, "CURRENCY_MISMATCH")
    assert await api.app[keys.PG_POOL].fetchval("SELECT count(*) FROM croupier.operations") == 0
    assert (await balance(api, "op1", currency="USD"), await balance(api, "op1")) == (OPENING, OPENING)


async def test_a_players_limits_shape_the_launch_and_a_block_refuses_real_play(api: ApiEnv) -> None:
    """The session limit caps the TTL, the reality check reaches the game; a blocked player gets 403."""
    op1 = api.as_("op1")
    assert (
        await op1.put("/v1/players/p1/limits", {"session_limit_s": 600, "reality_check_s": 900})
    ).status == 200
    session = (await op1.post("/v1/sessions", launch())).body
    lifetime = datetime.fromisoformat(session["expires_at"]) - datetime.fromisoformat(session["created_at"])
    assert (round(lifetime.total_seconds()), session["reality_check_s"]) == (600, 900)
    assert query_of(session["launch_url"])["reality_check_s"] == "900"
    assert (await op1.put("/v1/players/p1/block", {"state": "blocked"})).status == 200
    refused = await op1.post("/v1/sessions", launch(game_id="g2"))
    assert (refused.status, refused.body["code"]) == (403, "player_blocked")
    listed = (await op1.get("/v1/sessions", params={"player_id": "p1"})).body["sessions"]
    assert "g2" not in [s["game_id"] for s in listed]
    # Demo play risks no money: a blocked player may still play it.
    assert (await op1.post("/v1/sessions", launch(mode="demo"))).status == 201
