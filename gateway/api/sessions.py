"""Launch and session endpoints: start a game for a player, list, read and end sessions."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from redis.exceptions import LockError

from gateway import keys
from gateway.api import fields
from gateway.api.auth import operator_of
from gateway.api.games import CATALOGUE, DEVICES, MAX_JURISDICTION, certified
from gateway.api.problems import ApiError, Code
from gateway.catalogue import OperatorGame
from gateway.sessions import DEMO_SUFFIX, Session
from providers.base import LaunchRequest
from providers.identity import user_id
from wallet import limits
from wallet.backends.ledger import open_play_money

MODES = ("real", "demo")
MAX_URL = 2048
_COUNTRY = re.compile(r"[A-Z]{2}")
_LANGUAGE = re.compile(r"[a-z]{2}(-[A-Z]{2})?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_REQUEST_FIELDS = (
    "player_id",
    "currency",
    "provider",
    "game_id",
    "mode",
    "country",
    "language",
    "device",
    "jurisdiction",
    "lobby_url",
    "cashier_url",
)

routes = web.RouteTableDef()


def _iso(epoch_s: float) -> str | None:
    return fields.iso(datetime.fromtimestamp(epoch_s, UTC))


def session_json(session: Session) -> dict[str, Any]:
    """Return a session as the Session schema has it (never its token)."""
    return {
        "session_id": session.session_id,
        "player_id": session.player_id,
        "provider": session.provider,
        "game_id": session.game_id,
        "currency": session.currency,
        "mode": session.mode,
        "country": session.country,
        "language": session.language,
        "device": session.device,
        "jurisdiction": session.jurisdiction,
        "created_at": _iso(session.created_at),
        "expires_at": _iso(session.expires_at),
        "reality_check_s": session.reality_check_s,
    }


def _matching(data: dict[str, Any], name: str, pattern: re.Pattern[str], what: str) -> str | None:
    value = fields.text(data, name, required=False)
    if value is not None and not pattern.fullmatch(value):
        raise fields.invalid(f"{name} must be {what}")
    return value


def _url(data: dict[str, Any], name: str) -> str | None:
    value = fields.text(data, name, required=False, max_length=MAX_URL)
    if value is not None:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise fields.invalid(f"{name} must be an absolute http or https URL")
    return value


def _launch_body(data: dict[str, Any], request: web.Request) -> dict[str, Any]:
    """Read and check a SessionRequest; every field is named when it is wrong."""
    fields.only(data, _REQUEST_FIELDS)
    if data.get("currency") is None:
        raise fields.invalid("currency is required")
    currency = fields.currency(request, data["currency"])
    provider = _matching(data, "provider", _NAME, "a provider name")
    if provider is None:
        raise fields.invalid("provider is required")
    return {
        "player_id": fields.required_text(data, "player_id"),
        "currency": currency,
        "provider": provider,
        "game_id": fields.required_text(data, "game_id"),
        "mode": fields.choice(data, "mode", MODES, "real"),
        "country": _matching(data, "country", _COUNTRY, "an ISO 3166-1 alpha-2 code such as MT"),
        "language": _matching(data, "language", _LANGUAGE, "a language such as en or pt-BR") or "en",
        "device": fields.choice(data, "device", DEVICES, "desktop"),
        "jurisdiction": fields.text(data, "jurisdiction", required=False, max_length=MAX_JURISDICTION),
        "lobby_url": _url(data, "lobby_url"),
        "cashier_url": _url(data, "cashier_url"),
    }


def _check_available(entry: OperatorGame, body: dict[str, Any]) -> None:
    """Refuse a launch the game's settings or certification do not allow (409 game_unavailable)."""
    game = entry.game
    reason = None
    if not entry.settings.enabled:
        reason = "the game is disabled for this operator"
    elif body["mode"] == "demo" and not game.demo:
        reason = "the game offers no demo play"
    elif body["jurisdiction"] is not None and not certified(game, body["jurisdiction"]):
        reason = f"the game is not certified for jurisdiction {body['jurisdiction']}"
    elif body["device"] not in game.devices:
        reason = f"the game does not run on {body['device']}"
    if reason is not None:
        raise ApiError(409, Code.GAME_UNAVAILABLE, reason)


@routes.post("/sessions")
async def create_session(request: web.Request) -> web.Response:
    """Launch a game for a player: a session, its token and the provider's launch URL."""
    operator = operator_of(request)
    body = _launch_body(await fields.json_body(request), request)
    entry = await request.config_dict[CATALOGUE].game_for(operator, body["provider"], body["game_id"])
    if entry is None:
        raise ApiError(404, Code.NOT_FOUND, "no such game")
    _check_available(entry, body)
    settings = request.config_dict[keys.SETTINGS]
    op_settings = settings.operators[operator]
    demo = body["mode"] == "demo"
    async with request.config_dict[keys.PG_POOL].acquire() as conn:
        found = await limits.for_player(conn, op_settings.policy, body["player_id"])
    if found.block is not None and not demo:
        raise ApiError(403, Code.PLAYER_BLOCKED, f"the player is {found.block.state.replace('_', '-')}")
    ttl_s = settings.session_ttl_s
    if found.session_limit_s is not None:
        ttl_s = min(ttl_s, found.session_limit_s)
    # Demo play pays from the operator's play-money ledger, never its wallet.
    wallet_operator = operator + DEMO_SUFFIX if demo else operator
    store = request.config_dict[keys.SESSIONS]
    # One launch at a time per player and game, on every node: without it two launches at the same
    # instant could each count the other out and both survive.
    try:
        async with store.launch_lock(operator, body["player_id"], body["provider"], body["game_id"]):
            earlier = [
                s
                for s in await store.of_player(operator, body["player_id"])
                if (s.provider, s.game_id) == (body["provider"], body["game_id"])
            ]
            session = await store.create(
                wallet_operator,
                body["player_id"],
                body["currency"],
                body["provider"],
                body["game_id"],
                ttl_s,
                mode=body["mode"],
                country=body["country"],
                language=body["language"],
                device=body["device"],
                jurisdiction=body["jurisdiction"],
                reality_check_s=found.reality_check_s,
            )
            launch = LaunchRequest(
                token=session.token,
                user_id=user_id(wallet_operator, body["player_id"]),
                game_id=body["game_id"],
                currency=body["currency"],
                language=body["language"],
                country=body["country"],
                jurisdiction=body["jurisdiction"],
                device=body["device"],
                real=not demo,
                lobby_url=body["lobby_url"],
                cashier_url=body["cashier_url"],
                rtp_variant=entry.rtp_variant,
                reality_check_s=found.reality_check_s,
            )
            try:
                launch_url = request.config_dict[keys.ADAPTERS][body["provider"]].launch_url(launch)
            except Exception as exc:
                # A launch that fails leaves no session behind.
                await store.end_id(session.session_id)
                if isinstance(exc, ValueError):
                    # The adapter cannot launch this game (no player page, a missing account option).
                    raise ApiError(409, Code.GAME_UNAVAILABLE, str(exc)) from None
                raise
            if demo:
                async with request.config_dict[keys.PG_POOL].acquire() as conn:
                    await open_play_money(
                        conn,
                        wallet_operator,
                        body["player_id"],
                        body["currency"],
                        op_settings.demo_balance_minor,
                    )
            # Past the limit the oldest sessions end, so their tokens stop working at once.
            excess = len(earlier) + 1 - op_settings.max_sessions_per_game
            ended = [s.session_id for s in earlier[: max(0, excess)]]
            for session_id in ended:
                await store.end_id(session_id)
    except LockError:
        raise ApiError(
            503, Code.UNAVAILABLE, "another launch of this game for the player is under way"
        ) from None
    answer = session_json(session) | {
        "token": session.token,
        "launch_url": launch_url,
        "ended_sessions": ended,
    }
    return web.json_response(answer, status=201)


@routes.get("/sessions")
async def list_sessions(request: web.Request) -> web.Response:
    """List a player's open sessions, oldest first."""
    fields.only(request.query, ("player_id",))
    player_id = fields.required_text(request.query, "player_id")
    operator = operator_of(request)
    sessions = await request.config_dict[keys.SESSIONS].of_player(operator, player_id)
    return web.json_response({"sessions": [session_json(s) for s in sessions if s.owner == operator]})


async def _own_session(request: web.Request) -> Session:
    """Return the session in the path if this operator opened it; any other is 404."""
    session = await request.config_dict[keys.SESSIONS].by_id(request.match_info["session_id"])
    if session is None or session.owner != operator_of(request):
        raise ApiError(404, Code.NOT_FOUND, "no such session")
    return session


@routes.get("/sessions/{session_id}")
async def get_session(request: web.Request) -> web.Response:
    """Return an open session."""
    return web.json_response(session_json(await _own_session(request)))


@routes.delete("/sessions/{session_id}")
async def end_session(request: web.Request) -> web.Response:
    """End a session at once; its token stops working."""
    session = await _own_session(request)
    await request.config_dict[keys.SESSIONS].end_id(session.session_id)
    return web.Response(status=204)
