"""The house's routes that move no money: the slot page, recall, verification and the fair seeds."""

from __future__ import annotations

import uuid
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import redis.exceptions
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.callbacks import read_body
from gateway.keys import PROVIDER_CONTEXT
from providers import wire
from providers.base import json_response
from providers.house import errors, recall, schemas, seeds, store
from providers.house.play import live_session, owns
from providers.house.store import StoredRound
from wallet.errors import (
    InvalidRequestError,
    TransactionNotFoundError,
    UnavailableError,
    WalletError,
)

if TYPE_CHECKING:
    from gateway.sessions import Session
    from providers.context import ProviderContext
    from providers.house.adapter import HouseAdapter

# What the page may load, by name: nothing else under static/ is served.
STATIC_FILES = {
    "slot.js": "text/javascript",
    "slot.css": "text/css",
}
RECENT_ROUNDS = 10
BODY_LIMIT = 4096


def static_dir() -> Path:
    """Return the folder of the page's files."""
    return Path(str(resources.files("providers.house").joinpath("static")))


def _error(error: WalletError) -> web.Response:
    native = errors.native(error)
    payload = {"status": "ERROR", "code": native.code, "message": str(error), "retryable": native.retryable}
    return json_response(payload, native.http_status)


async def _page(_request: web.Request) -> web.StreamResponse:
    """Serve the slot's player page."""
    return web.FileResponse(static_dir() / "index.html", headers={"Cache-Control": "no-cache"})


async def _static(request: web.Request) -> web.StreamResponse:
    """Serve one of the page's own files."""
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise web.HTTPNotFound(text=f"no static file {name}")
    return web.FileResponse(
        static_dir() / name, headers={"Content-Type": STATIC_FILES[name], "Cache-Control": "no-cache"}
    )


def _ctx(request: web.Request) -> ProviderContext:
    return request.app[PROVIDER_CONTEXT]


async def _player(request: web.Request, token: str) -> Session:
    session, _ = await _ctx(request).session(token)
    return live_session(session)


async def _body(request: web.Request) -> dict[str, Any]:
    return wire.decode(await read_body(request, BODY_LIMIT))


async def _owned_round(request: web.Request) -> StoredRound:
    """Return the round named in the path if the bearer's token or session may see it."""
    token = schemas.bearer(request.headers.get("Authorization"))
    try:
        round_id = uuid.UUID(request.match_info["round_id"])
    except ValueError:
        raise InvalidRequestError("round id must be a UUID") from None
    async with _ctx(request).pool.acquire() as conn:
        stored = await store.find_round(conn, round_id)
    session, _ = await _ctx(request).session(token)
    # A stranger's round answers exactly like a missing one.
    if stored is None or not owns(stored, token, session):
        raise TransactionNotFoundError(f"no round {round_id}")
    return stored


class Views:
    """The handlers, bound to one adapter (its game book)."""

    def __init__(self, adapter: HouseAdapter) -> None:
        self.adapter = adapter

    async def recall(self, request: web.Request) -> web.StreamResponse:
        """GET /rounds/{round_id}: the stored round, its balances and a replay from its draws."""
        stored = await _owned_round(request)
        async with _ctx(request).pool.acquire() as conn:
            game = await recall.game_of(conn, stored, self.adapter.book)
        check = recall.replay(game, stored)
        return json_response({"status": "OK", **recall.recall_payload(stored, check, reveal_void=False)})

    async def verify(self, request: web.Request) -> web.StreamResponse:
        """GET /rounds/{round_id}/verify: recompute a fair round from its revealed server seed."""
        stored = await _owned_round(request)
        if stored.mode != "fair":
            return _not_yet("this round was not played in provably fair mode")
        if not stored.shown:
            return _not_yet("this round's bet was not accepted, so it has no outcome to verify")
        if stored.revealed_seed is None:
            return _not_yet("the server seed is still secret: rotate the seed pair to reveal it")
        async with _ctx(request).pool.acquire() as conn:
            game = await recall.game_of(conn, stored, self.adapter.book)
        check = recall.verify_fair(game, stored)
        payload = {
            "command": recall.verify_command(stored),
            "status": "OK",
            "round_id": str(stored.round_id),
            "game": stored.game,
            "client_seed": stored.client_seed,
            "nonce": stored.nonce,
            "commitment": stored.commitment,
            **check.to_dict(),
        }
        return json_response(payload)

    async def recent(self, request: web.Request) -> web.StreamResponse:
        """GET /rounds: the player's last rounds, each replayed."""
        player = await _player(request, schemas.bearer(request.headers.get("Authorization")))
        async with _ctx(request).pool.acquire() as conn:
            rounds = await store.recent_rounds(conn, player.operator, player.player_id, RECENT_ROUNDS)
            listed = []
            for stored in rounds:
                game = await recall.game_of(conn, stored, self.adapter.book)
                check = recall.replay(game, stored)
                listed.append(recall.recall_payload(stored, check, reveal_void=False))
        return json_response({"status": "OK", "rounds": listed})

    async def games(self, request: web.Request) -> web.StreamResponse:
        """GET /games: the games served and the digest of each one's configuration."""
        book = self.adapter.book
        listed = []
        for name in book.names:
            loaded = book.current(name)
            assert loaded is not None
            listed.append({"game": name, "config_sha256": loaded.sha256.hex(), **describe(loaded.game)})
        return json_response({"status": "OK", "games": listed})


def describe(game: object) -> dict[str, Any]:
    """Return what a page needs to lay a game out (the slot's title, reels, rows, paylines, symbols)."""
    config = getattr(game, "config", None)
    shown: dict[str, Any] = {}
    for attribute in ("title", "reels", "rows", "lines", "paylines", "names"):
        value = getattr(config, attribute, None)
        if isinstance(value, (str, int, tuple)):
            shown[attribute] = value
    return shown


def _not_yet(message: str) -> web.Response:
    payload = {"status": "ERROR", "code": errors.NOT_YET.code, "message": message, "retryable": False}
    return json_response(payload, errors.NOT_YET.http_status)


async def fair_state(request: web.Request) -> web.StreamResponse:
    """GET /fair: the active pair's commitment, client seed and next nonce (committed on first ask)."""
    player = await _player(request, schemas.bearer(request.headers.get("Authorization")))
    async with _ctx(request).pool.acquire() as conn, conn.transaction():
        pair = await seeds.active_pair(conn, player.operator, player.player_id)
    return json_response({"status": "OK", "active": pair.public()})


async def fair_client_seed(request: web.Request) -> web.StreamResponse:
    """POST /fair/client-seed {token, client_seed}: choose the client seed of the next rounds."""
    data = await _body(request)
    player = await _player(request, schemas.token(data))
    client_seed = schemas.client_seed(data, required=True)
    assert client_seed is not None
    async with _ctx(request).pool.acquire() as conn, conn.transaction():
        pair = await seeds.set_client_seed(conn, player.operator, player.player_id, client_seed)
    return json_response({"status": "OK", "active": pair.public()})


async def fair_rotate(request: web.Request) -> web.StreamResponse:
    """POST /fair/rotate {token, client_seed?}: reveal the server seed and commit a new one."""
    data = await _body(request)
    player = await _player(request, schemas.token(data))
    client_seed = schemas.client_seed(data, required=False)
    async with _ctx(request).pool.acquire() as conn, conn.transaction():
        revealed, fresh = await seeds.rotate(conn, player.operator, player.player_id, client_seed)
    return json_response({"status": "OK", "revealed": revealed.public(), "active": fresh.public()})


def _answering(handler: Handler) -> Handler:
    """Wrap a handler so core errors answer in the house's error format."""

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except WalletError as exc:
            return _error(exc)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, redis.exceptions.RedisError, OSError):
            # Our own storage failed: nothing was decided, so the caller may ask again.
            return _error(UnavailableError("storage unavailable"))

    return handle


def routes(adapter: HouseAdapter) -> list[web.RouteDef]:
    """Return the adapter's routes that move no money, relative to /providers/house."""
    views = Views(adapter)
    table: list[tuple[str, str, Handler]] = [
        ("GET", "/slot", _page),
        ("GET", "/static/{name}", _static),
        ("GET", "/games", views.games),
        ("GET", "/rounds", views.recent),
        ("GET", "/rounds/{round_id}", views.recall),
        ("GET", "/rounds/{round_id}/verify", views.verify),
        ("GET", "/fair", fair_state),
        ("POST", "/fair/client-seed", fair_client_seed),
        ("POST", "/fair/rotate", fair_rotate),
    ]
    return [web.route(method, path, _answering(handler)) for method, path, handler in table]
