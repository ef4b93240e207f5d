"""Operator API catalogue: the merged list, its filters and ETag, per-operator settings, and launch checks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from api_support import *  # noqa: F403
from api_support import ApiEnv, api_settings, serve_api

from gateway import keys
from gateway.catalogue import Catalogue
from providers import registry
from providers.base import Game

GAMES: list[dict[str, Any]] = [
    {"id": "g1", "name": "Generic One"},
    {"id": "g2", "name": "Generic Two", "demo": False},
    {
        "id": "g3",
        "name": "Generic Roulette",
        "type": "table",
        "devices": ["desktop"],
        "jurisdictions": ["MT", "UKGC"],
        "rtp_variants": ["94", "96"],
    },
]


@pytest.fixture
async def cat(fresh_db: str, fresh_redis: str) -> AsyncIterator[ApiEnv]:
    """Yield the Operator API gateway with a generic provider whose games differ in every filter."""
    settings = api_settings(fresh_db, fresh_redis)
    generic = settings.providers["generic"]
    providers = {**settings.providers, "generic": replace(generic, options={"games": GAMES})}
    async with contextlib.AsyncExitStack() as stack:
        yield await serve_api(replace(settings, providers=providers), stack)


def ids(reply: Any) -> list[tuple[str, str]]:
    """Return the (provider, game id) pairs of a game list, in the order answered."""
    return [(g["provider"], g["game_id"]) for g in reply.body["games"]]


def etag_of(reply: Any) -> str:
    """Return a reply's ETag header, whatever case the server wrote its name in."""
    return next(v for k, v in reply.headers.items() if k.lower() == "etag")


def launch(game_id: str, **extra: Any) -> dict[str, Any]:
    """Return a launch body for a generic game."""
    return {"player_id": "p1", "currency": "EUR", "provider": "generic", "game_id": game_id, **extra}


async def test_the_list_merges_every_provider_in_a_stable_order(cat: ApiEnv) -> None:
    """Every configured provider's games, house games included, sorted by provider then game id."""
    reply = await cat.as_("op1").get("/v1/games")
    assert reply.status == 200
    found = ids(reply)
    assert found == sorted(found)
    assert reply.body["count"] == len(found)
    assert {p for p, _ in found} == set(registry.names())
    assert {("house", "house:slot"), ("generic", "g1"), ("generic", "g3")} <= set(found)
    g3 = next(g for g in reply.body["games"] if g["game_id"] == "g3")
    assert g3 == {
        "provider": "generic",
        "game_id": "g3",
        "name": "Generic Roulette",
        "type": "table",
        "devices": ["desktop"],
        "jurisdictions": ["MT", "UKGC"],
        "demo": True,
        "rtp_variants": ["94", "96"],
        "rtp_variant": None,
        "enabled": True,
    }


async def test_each_filter_narrows_the_list(cat: ApiEnv) -> None:
    """provider, type, jurisdiction (empty = everywhere), device and demo each filter; they combine."""
    op1 = cat.as_("op1")
    everything = set(ids(await op1.get("/v1/games")))

    async def listed(**params: Any) -> set[tuple[str, str]]:
        return set(ids(await op1.get("/v1/games", params=params)))

    assert await listed(provider="generic") == {("generic", "g1"), ("generic", "g2"), ("generic", "g3")}
    tables = await listed(type="table")
    assert ("generic", "g3") in tables
    assert ("house", "house:roulette") in tables
    assert ("generic", "g1") not in tables
    assert await listed(jurisdiction="MT") == everything
    assert await listed(jurisdiction="SE") == everything - {("generic", "g3")}
    assert await listed(device="mobile") == everything - {("generic", "g3")}
    assert ("generic", "g2") in await listed(demo=False)
    assert ("generic", "g2") not in await listed(demo=True)
    assert await listed(provider="generic", demo=True, jurisdiction="SE") == {("generic", "g1")}


async def test_a_bad_filter_is_a_400(cat: ApiEnv) -> None:
    """An unknown device, a non-boolean flag or an unknown parameter is refused, naming it."""
    op1 = cat.as_("op1")
    for params, named in (
        ({"device": "tablet"}, "device"),
        ({"demo": "yes"}, "demo"),
        ({"colour": "red"}, "colour"),
    ):
        reply = await op1.get("/v1/games", params=params, check_request=False)
        assert (reply.status, reply.body["code"]) == (400, "invalid_request")
        assert named in reply.body["detail"]


async def test_disabling_a_game_is_per_operator(cat: ApiEnv) -> None:
    """op1 disables g1: it leaves op1's list (unless include_disabled) and op2 still has it."""
    op1, op2 = cat.as_("op1"), cat.as_("op2")
    reply = await op1.put("/v1/games/generic/g1", {"enabled": False})
    assert (reply.status, reply.body["enabled"], reply.body["game_id"]) == (200, False, "g1")
    assert ("generic", "g1") not in ids(await op1.get("/v1/games"))
    with_disabled = await op1.get("/v1/games", params={"include_disabled": True})
    assert next(g for g in with_disabled.body["games"] if g["game_id"] == "g1")["enabled"] is False
    assert (await op1.get("/v1/games/generic/g1")).body["enabled"] is False
    assert ("generic", "g1") in ids(await op2.get("/v1/games"))
    assert (await op2.get("/v1/games/generic/g1")).body["enabled"] is True
    # Launching a disabled game is refused for op1 only.
    refused = await op1.post("/v1/sessions", launch("g1"))
    assert (refused.status, refused.body["code"]) == (409, "game_unavailable")
    assert (await op2.post("/v1/sessions", launch("g1"))).status == 201
    # Enabling it again brings it back.
    await op1.put("/v1/games/generic/g1", {"enabled": True})
    assert ("generic", "g1") in ids(await op1.get("/v1/games"))


async def test_the_chosen_rtp_variant_reaches_the_launch_url(cat: ApiEnv) -> None:
    """A variant the game offers is stored and sent at launch; another operator keeps the default."""
    op1, op2 = cat.as_("op1"), cat.as_("op2")
    reply = await op1.put("/v1/games/generic/g3", {"enabled": True, "rtp_variant": "94"})
    assert (reply.status, reply.body["rtp_variant"]) == (200, "94")
    launched = await op1.post("/v1/sessions", launch("g3"))
    assert launched.status == 201
    assert parse_qs(urlsplit(launched.body["launch_url"]).query)["rtp"] == ["94"]
    other = await op2.post("/v1/sessions", launch("g3"))
    assert "rtp" not in parse_qs(urlsplit(other.body["launch_url"]).query)
    # Back to the default: no variant is sent.
    await op1.put("/v1/games/generic/g3", {"enabled": True, "rtp_variant": None})
    again = await op1.post("/v1/sessions", launch("g3"))
    assert "rtp" not in parse_qs(urlsplit(again.body["launch_url"]).query)


async def test_an_rtp_variant_the_game_lacks_is_a_400_and_nothing_changes(cat: ApiEnv) -> None:
    """A variant outside the game's list (or on a game with one RTP) is refused; settings stay."""
    op1 = cat.as_("op1")
    await op1.put("/v1/games/generic/g3", {"enabled": True, "rtp_variant": "96"})
    for path, body in (
        ("/v1/games/generic/g3", {"enabled": False, "rtp_variant": "97"}),
        ("/v1/games/generic/g1", {"enabled": True, "rtp_variant": "96"}),
    ):
        reply = await op1.put(path, body)
        assert (reply.status, reply.body["code"]) == (400, "invalid_request")
        assert "rtp_variant" in reply.body["detail"]
    g3 = (await op1.get("/v1/games/generic/g3")).body
    assert (g3["enabled"], g3["rtp_variant"]) == (True, "96")


async def test_unknown_games_are_404_and_bad_bodies_400(cat: ApiEnv) -> None:
    """GET or PUT of a game no provider offers is 404; a malformed PUT body is 400 and writes nothing."""
    op1 = cat.as_("op1")
    for path in ("/v1/games/generic/nope", "/v1/games/nobody/g1"):
        assert (await op1.get(path)).status == 404
        assert (await op1.put(path, {"enabled": False})).body["code"] == "not_found"
    for body in ({"enabled": "no"}, {}, {"enabled": False, "colour": "red"}):
        reply = await op1.put("/v1/games/generic/g1", body, check_request=False)
        assert (reply.status, reply.body["code"]) == (400, "invalid_request")
    rows = await cat.app[keys.PG_POOL].fetchval("SELECT count(*) FROM croupier.game_settings")
    assert rows == 0


async def test_an_unchanged_list_answers_304_to_its_etag(cat: ApiEnv) -> None:
    """If-None-Match with the list's ETag is 304; a change of settings or filters changes the ETag."""
    op1 = cat.as_("op1")
    first = await op1.get("/v1/games")
    etag = etag_of(first)
    same = await op1.get("/v1/games", headers={"If-None-Match": etag})
    assert (same.status, same.body, etag_of(same)) == (304, None, etag)
    filtered = await op1.get("/v1/games", params={"provider": "generic"}, headers={"If-None-Match": etag})
    assert filtered.status == 200
    assert etag_of(filtered) != etag
    await op1.put("/v1/games/generic/g2", {"enabled": False})
    changed = await op1.get("/v1/games", headers={"If-None-Match": etag})
    assert changed.status == 200
    assert etag_of(changed) != etag
    # op2's list did not change with op1's setting.
    assert (await cat.as_("op2").get("/v1/games", headers={"If-None-Match": etag})).status == 304


async def test_a_launch_the_game_does_not_allow_is_409_and_opens_no_session(cat: ApiEnv) -> None:
    """Demo of a game without demo, an uncertified jurisdiction or device, a game with no page: 409."""
    op1 = cat.as_("op1")
    bodies = [
        launch("g2", mode="demo"),
        launch("g3", jurisdiction="SE"),
        launch("g3", device="mobile"),
        {**launch("house:roulette"), "provider": "house"},
    ]
    for body in bodies:
        reply = await op1.post("/v1/sessions", body)
        assert (reply.status, reply.body["code"]) == (409, "game_unavailable"), body
    assert (await op1.get("/v1/sessions", params={"player_id": "p1"})).body == {"sessions": []}
    assert (await op1.post("/v1/sessions", launch("g3", jurisdiction="MT"))).status == 201


class _Adapter:
    """Stands in for an adapter: its catalogue is a list the test changes, or an error."""

    def __init__(self, name: str, games: list[Game]) -> None:
        self.name = name
        self.games: list[Game] | Exception = games

    def catalogue(self) -> list[Game]:
        if isinstance(self.games, Exception):
            raise self.games
        return self.games


def test_the_catalogue_refreshes_after_its_ttl_and_keeps_a_failing_adapters_last_list() -> None:
    """Within the TTL the cache is served; then the adapters are asked again; a failure keeps its list."""
    now = [0.0]
    a = _Adapter("a", [Game("a", "a1", "A One")])
    b = _Adapter("b", [Game("b", "b1", "B One")])
    catalogue = Catalogue({"a": a, "b": b}, pool=None, ttl_s=60, clock=lambda: now[0])  # type: ignore[arg-type]
    assert [g.game_id for g in catalogue.games()] == ["a1", "b1"]
    a.games = [Game("a", "a2", "A Two"), Game("a", "a1", "A One")]
    b.games = RuntimeError("provider down")
    now[0] = 59
    assert [g.game_id for g in catalogue.games()] == ["a1", "b1"]
    now[0] = 60
    assert [g.game_id for g in catalogue.games()] == ["a1", "a2", "b1"]
    assert catalogue.find("b", "b1") is not None
