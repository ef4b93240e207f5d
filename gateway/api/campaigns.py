"""Free-round campaigns: create, list, show with each player's progress, and cancel."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from gateway import keys
from gateway.api import fields
from gateway.api.auth import operator_of
from gateway.api.problems import ApiError, Code
from wallet import campaigns
from wallet.campaigns import Campaign, NewCampaign, PlayerProgress, Progress

routes = web.RouteTableDef()

_REQUEST_FIELDS = (
    "name",
    "provider",
    "game_ids",
    "player_ids",
    "currency",
    "rounds",
    "bet_minor",
    "expires_at",
)
MAX_NAME = 128
MAX_GAMES = 100
MAX_PLAYERS = 10_000
MAX_ROUNDS = 10_000
# A listing answers at most this many campaigns (newest first), so one call stays bounded.
MAX_LISTED = 1000


def _ids(data: Mapping[str, Any], name: str, max_items: int) -> tuple[str, ...]:
    """Return a required list of 1 to `max_items` distinct ids."""
    value = data.get(name)
    if not isinstance(value, list) or not 1 <= len(value) <= max_items:
        raise fields.invalid(f"{name} must be a list of 1 to {max_items} ids")
    ids = tuple(fields.required_text({name: item}, name) for item in value)
    if len(set(ids)) != len(ids):
        raise fields.invalid(f"{name} must not repeat an id")
    return ids


def _new_campaign(request: web.Request, data: Mapping[str, Any]) -> NewCampaign:
    """Validate a campaign request against the gateway's providers, catalogues and currencies."""
    fields.only(data, _REQUEST_FIELDS)
    name = fields.text(data, "name", required=False, max_length=MAX_NAME)
    provider = fields.required_text(data, "provider", max_length=64)
    game_ids = _ids(data, "game_ids", MAX_GAMES)
    player_ids = _ids(data, "player_ids", MAX_PLAYERS)
    if data.get("currency") is None:
        raise fields.invalid("currency is required")
    currency = fields.currency(request, data["currency"])
    rounds = fields.integer(data, "rounds", minimum=1, maximum=MAX_ROUNDS)
    bet_minor = fields.integer(data, "bet_minor", minimum=1)
    if "expires_at" not in data:
        raise fields.invalid("expires_at is required")
    expires_at = fields.timestamp(data["expires_at"], "expires_at")
    assert rounds is not None
    assert bet_minor is not None
    if expires_at <= datetime.now(UTC):
        raise fields.invalid("expires_at must be in the future")
    adapter = request.config_dict[keys.ADAPTERS].get(provider)
    if adapter is None:
        raise ApiError(404, Code.NOT_FOUND, f"no provider {provider!r}")
    if not adapter.capabilities.free_rounds:
        # A campaign nobody could ever play would sit 'active' with no progress: refuse it now.
        raise ApiError(409, Code.GAME_UNAVAILABLE, f"provider {provider!r} has no free rounds")
    catalogue = {game.game_id for game in adapter.catalogue()}
    unknown = [game_id for game_id in game_ids if game_id not in catalogue]
    if unknown:
        raise fields.invalid(f"not in {provider}'s catalogue: {', '.join(unknown)}")
    return NewCampaign(
        id=campaigns.mint_id(),
        operator=operator_of(request),
        name=name,
        provider=provider,
        game_ids=game_ids,
        player_ids=player_ids,
        currency=currency,
        rounds=rounds,
        bet_minor=bet_minor,
        expires_at=expires_at,
    )


def _progress(progress: Progress) -> dict[str, int]:
    return {
        "rounds_played": progress.rounds_played,
        "wins_count": progress.wins_count,
        "wins_minor": progress.wins_minor,
    }


def _campaign(campaign: Campaign) -> dict[str, Any]:
    return {
        "campaign_id": campaign.id,
        "name": campaign.name,
        "provider": campaign.provider,
        "game_ids": list(campaign.game_ids),
        "players": campaign.players,
        "currency": campaign.currency,
        "rounds": campaign.rounds,
        "bet_minor": campaign.bet_minor,
        "expires_at": fields.iso(campaign.expires_at),
        "state": campaign.state,
        "created_at": fields.iso(campaign.created_at),
        "cancelled_at": fields.iso(campaign.cancelled_at),
        "progress": _progress(campaign.progress),
    }


def _player(player: PlayerProgress) -> dict[str, Any]:
    return {
        "player_id": player.player_id,
        **_progress(player.progress),
        "rounds_left": player.rounds_left,
        "last_win_at": fields.iso(player.last_win_at),
    }


def _json(payload: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def _not_found(campaign_id: str) -> ApiError:
    return ApiError(404, Code.NOT_FOUND, f"no campaign {campaign_id!r}")


@routes.post("/campaigns")
async def create_campaign(request: web.Request) -> web.Response:
    """Create a free-round campaign for a list of players."""
    new = _new_campaign(request, await fields.json_body(request))
    async with request.config_dict[keys.PG_POOL].acquire() as conn:
        campaign = await campaigns.create(conn, new)
    return _json(_campaign(campaign), status=201)


@routes.get("/campaigns")
async def list_campaigns(request: web.Request) -> web.Response:
    """List this operator's campaigns, newest first."""
    query = request.query
    fields.only(query, ("state", "provider", "player_id"))
    state = fields.choice(query, "state", campaigns.STATES)
    provider = fields.text(query, "provider", required=False, max_length=64)
    player_id = fields.text(query, "player_id", required=False)
    async with request.config_dict[keys.PG_POOL].acquire() as conn:
        found = await campaigns.listing(
            conn, operator_of(request), state=state, provider=provider, player_id=player_id, limit=MAX_LISTED
        )
    return _json({"campaigns": [_campaign(c) for c in found]})


@routes.get("/campaigns/{campaign_id}")
async def get_campaign(request: web.Request) -> web.Response:
    """Return a campaign with each player's progress."""
    campaign_id = request.match_info["campaign_id"]
    async with request.config_dict[keys.PG_POOL].acquire() as conn:
        campaign = await campaigns.get(conn, operator_of(request), campaign_id)
        if campaign is None:
            raise _not_found(campaign_id)
        players = await campaigns.player_progress(conn, campaign)
    return _json(_campaign(campaign) | {"player_progress": [_player(p) for p in players]})


@routes.post("/campaigns/{campaign_id}/cancel")
async def cancel_campaign(request: web.Request) -> web.Response:
    """Cancel an active campaign; a cancelled or expired one is a conflict."""
    campaign_id = request.match_info["campaign_id"]
    operator = operator_of(request)
    async with request.config_dict[keys.PG_POOL].acquire() as conn:
        cancelled = await campaigns.cancel(conn, operator, campaign_id)
        if cancelled is None:
            current = await campaigns.get(conn, operator, campaign_id)
            if current is None:
                raise _not_found(campaign_id)
            raise ApiError(409, Code.CONFLICT, f"the campaign is already {current.state}")
    return _json(_campaign(cancelled))
