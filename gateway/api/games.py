"""Catalogue endpoints: list the games, read one, and set an operator's enable flag and RTP variant."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web

from gateway import keys
from gateway.api import fields
from gateway.api.auth import operator_of
from gateway.api.problems import ApiError, Code
from gateway.catalogue import Catalogue, GameSettings, OperatorGame
from providers.base import Adapter, Game

CATALOGUE = web.AppKey("catalogue", Catalogue)
DEVICES = ("desktop", "mobile")
MAX_NAME = 64
MAX_TYPE = 32
MAX_JURISDICTION = 16
MAX_RTP_VARIANT = 16
_LIST_QUERY = ("provider", "type", "jurisdiction", "device", "demo", "include_disabled")

routes = web.RouteTableDef()


async def _catalogue(api: web.Application) -> AsyncIterator[None]:
    gateway = api[keys.GATEWAY]
    adapters: dict[str, Adapter] = gateway[keys.ADAPTERS]
    catalogue = Catalogue(adapters, gateway[keys.PG_POOL], gateway[keys.SETTINGS].catalogue_ttl_s)
    catalogue.refresh()
    api[CATALOGUE] = catalogue
    yield


cleanup_ctx = [_catalogue]


def game_json(entry: OperatorGame) -> dict[str, Any]:
    """Return a game as the Game schema has it."""
    game = entry.game
    return {
        "provider": game.provider,
        "game_id": game.game_id,
        "name": game.name,
        "type": game.type,
        "devices": list(game.devices),
        "jurisdictions": list(game.jurisdictions),
        "demo": game.demo,
        "rtp_variants": list(game.rtp_variants),
        "rtp_variant": entry.rtp_variant,
        "enabled": entry.settings.enabled,
    }


def certified(game: Game, jurisdiction: str) -> bool:
    """Return whether a game may be played in a jurisdiction (an empty list means everywhere)."""
    return not game.jurisdictions or jurisdiction in game.jurisdictions


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _matches(header: str | None, etag: str) -> bool:
    """Return whether an If-None-Match header names this entity tag (weak comparison)."""
    if header is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag in tags


@routes.get("/games")
async def list_games(request: web.Request) -> web.StreamResponse:
    """List the games this operator can launch, filtered, with an ETag."""
    query = request.query
    fields.only(query, _LIST_QUERY)
    provider = fields.text(query, "provider", required=False, max_length=MAX_NAME)
    game_type = fields.text(query, "type", required=False, max_length=MAX_TYPE)
    jurisdiction = fields.text(query, "jurisdiction", required=False, max_length=MAX_JURISDICTION)
    device = fields.choice(query, "device", DEVICES)
    demo = fields.query_bool(request, "demo")
    include_disabled = fields.query_bool(request, "include_disabled") or False
    games = [
        game_json(entry)
        for entry in await request.config_dict[CATALOGUE].for_operator(operator_of(request))
        if (include_disabled or entry.settings.enabled)
        and (provider is None or entry.game.provider == provider)
        and (game_type is None or entry.game.type == game_type)
        and (jurisdiction is None or certified(entry.game, jurisdiction))
        and (device is None or device in entry.game.devices)
        and (demo is None or entry.game.demo == demo)
    ]
    body = orjson.dumps({"games": games, "count": len(games)})
    etag = _etag(body)
    if _matches(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers={"ETag": etag})
    return web.Response(body=body, content_type="application/json", headers={"ETag": etag})


async def _game(request: web.Request) -> OperatorGame:
    found = await request.config_dict[CATALOGUE].game_for(
        operator_of(request), request.match_info["provider"], request.match_info["game_id"]
    )
    if found is None:
        raise ApiError(404, Code.NOT_FOUND, "no such game")
    return found


@routes.get("/games/{provider}/{game_id}")
async def get_game(request: web.Request) -> web.Response:
    """Return one game with this operator's settings."""
    return web.json_response(game_json(await _game(request)), dumps=_dumps)


@routes.put("/games/{provider}/{game_id}")
async def set_game(request: web.Request) -> web.Response:
    """Enable or disable a game for this operator and choose its RTP variant."""
    data = await fields.json_body(request)
    fields.only(data, ("enabled", "rtp_variant"))
    enabled = fields.boolean(data, "enabled")
    rtp_variant = fields.text(data, "rtp_variant", required=False, max_length=MAX_RTP_VARIANT)
    current = await _game(request)
    game = current.game
    if rtp_variant is not None and rtp_variant not in game.rtp_variants:
        offered = ", ".join(game.rtp_variants) or "none (the game has one RTP)"
        raise fields.invalid(f"rtp_variant must be one of the game's rtp_variants: {offered}")
    stored = await request.config_dict[CATALOGUE].configure(
        operator_of(request), game, GameSettings(enabled, rtp_variant)
    )
    return web.json_response(game_json(stored), dumps=_dumps)


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()
