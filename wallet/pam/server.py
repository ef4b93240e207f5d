"""The reference operator wallet server: the Operator Wallet API v1 over aiohttp."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson
from aiohttp import web

from wallet.db import Connection
from wallet.engine import Engine, Outcome
from wallet.pam import store
from wallet.pam.settings import PamSettings
from wallet.pam.store import Money, OpType, Status, UnknownCurrencyError
from wallet.signing import SignatureError, Verifier

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

    Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = logging.getLogger(__name__)

PAM_SETTINGS = web.AppKey("pam_settings", PamSettings)
PAM_VERIFIER = web.AppKey("pam_verifier", Verifier)
PAM_POOL = web.AppKey("pam_pool", asyncpg.Pool)
PAM_ENGINE = web.AppKey("pam_engine", Engine)

UNSIGNED_PATHS = frozenset({"/livez"})
CURRENCY_CODE = re.compile(r"[A-Z0-9]{3,6}")
CREDIT_KINDS = frozenset({"win", "bonus", "jackpot", "promo", "freeround"})
MAX_AMOUNT_MINOR = 10**15
MAX_ID_CHARS = 128
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_CURSOR = 2**63 - 1


class InvalidRequestError(Exception):
    """The request is malformed; it is answered 400 and nothing is written."""


def create_pam_app(settings: PamSettings) -> web.Application:
    """Return the reference operator wallet as an aiohttp application."""
    # aiohttp refuses a body above client_max_size while reading it, before any JSON parsing.
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[_guard])
    app[PAM_SETTINGS] = settings
    app[PAM_VERIFIER] = Verifier(settings.secrets, settings.max_skew_s)
    app.cleanup_ctx.append(_database)
    app.router.add_post("/v1/balance", _balance)
    app.router.add_post("/v1/debit", _money_view("debit"))
    app.router.add_post("/v1/credit", _money_view("credit"))
    app.router.add_post("/v1/rollback", _money_view("rollback"))
    app.router.add_get("/v1/transactions", _transactions)
    app.router.add_post("/admin/players", _set_player)
    app.router.add_get("/admin/players/{player_id}", _get_player)
    app.router.add_get("/livez", _livez)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    """Open the pool (migrating the schema first) for the application's lifetime."""
    pool = await store.open_pool(app[PAM_SETTINGS].database_url)
    app[PAM_POOL] = pool
    # Money requests share commits, as the gateway's do: one writer, a short window.
    engine = Engine(pool)
    app[PAM_ENGINE] = engine
    engine.start()
    yield
    await engine.stop()
    await pool.close()


def _json(payload: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def _error(status: Status, http_status: int, message: str) -> web.Response:
    return _json({"status": status, "message": message}, http_status)


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse oversized and badly signed requests and turn failures into API statuses."""
    settings = request.app[PAM_SETTINGS]
    try:
        if request.match_info.http_exception is None and request.path not in UNSIGNED_PATHS:
            await _verify(request, settings.max_body_bytes)
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        message = f"body exceeds {settings.max_body_bytes} bytes"
        return _error(Status.INVALID_REQUEST, web.HTTPRequestEntityTooLarge.status_code, message)
    except SignatureError as exc:
        return _error(Status.INVALID_SIGNATURE, web.HTTPUnauthorized.status_code, str(exc))
    except (InvalidRequestError, UnknownCurrencyError) as exc:
        return _error(Status.INVALID_REQUEST, web.HTTPBadRequest.status_code, str(exc))
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        # The outcome is unknown to the caller, who retries with the same transaction id.
        log.exception("wallet request failed: %s %s", request.method, request.path)
        return _error(Status.INTERNAL_ERROR, web.HTTPInternalServerError.status_code, "failed")


async def _verify(request: web.Request, max_body_bytes: int) -> None:
    """Read the body within its size limit and check its signature."""
    if (request.content_length or 0) > max_body_bytes:
        raise web.HTTPRequestEntityTooLarge(max_body_bytes, request.content_length or 0)
    body = await request.read()
    request.app[PAM_VERIFIER].verify(request.headers, request.method, request.path_qs, body)


async def _body(request: web.Request) -> dict[str, Any]:
    """Return the request's JSON object."""
    try:
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidRequestError("body must be a JSON object")
    return data


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
        raise InvalidRequestError(f"{name} must be a string of 1 to {MAX_ID_CHARS} characters")
    return value


def _minor(data: Mapping[str, Any], name: str) -> int:
    value = data.get(name)
    # `type() is int` because bool is an int subclass; a float is never an amount, even 5.0.
    if type(value) is not int or not 0 <= value <= MAX_AMOUNT_MINOR:
        raise InvalidRequestError(f"{name} must be an integer from 0 to {MAX_AMOUNT_MINOR}")
    return value


def _currency(data: Mapping[str, Any]) -> str:
    value = data.get("currency")
    if not isinstance(value, str) or not CURRENCY_CODE.fullmatch(value):
        raise InvalidRequestError("currency must be 3 to 6 uppercase letters or digits")
    return value


def _money(data: Mapping[str, Any], op: OpType) -> Money:
    kind = reference = None
    if op == "credit":
        kind = _text(data, "kind")
        if kind not in CREDIT_KINDS:
            raise InvalidRequestError(f"kind must be one of {', '.join(sorted(CREDIT_KINDS))}")
    if op == "rollback":
        reference = _text(data, "reference_transaction_id")
    return Money(
        op=op,
        transaction_id=_text(data, "transaction_id"),
        player_id=_text(data, "player_id"),
        currency=_currency(data),
        amount_minor=_minor(data, "amount_minor"),
        round_id=_text(data, "round_id"),
        # A refund or a jackpot may not name a game: owed money is never refused for that.
        game_id=None if data.get("game_id") is None else _text(data, "game_id"),
        provider=_text(data, "provider"),
        kind=kind,
        reference_transaction_id=reference,
    )


async def _balance(request: web.Request) -> web.Response:
    data = await _body(request)
    request_id, player_id = _text(data, "request_id"), _text(data, "player_id")
    answer = await store.balance(request.app[PAM_POOL], player_id, _currency(data))
    return _json(
        {
            "status": answer.status,
            "request_id": request_id,
            "player_id": player_id,
            "currency": answer.currency,
            "balance_minor": answer.balance_minor,
        }
    )


def _money_view(op: OpType) -> Handler:
    """Return the view of one money endpoint."""

    async def view(request: web.Request) -> web.Response:
        data = await _body(request)
        request_id = _text(data, "request_id")
        money = _money(data, op)

        async def apply(conn: Connection) -> Outcome:
            return Outcome(value=await store.apply_money_in(conn, money))

        outcome = await request.app[PAM_ENGINE].run(apply)
        if outcome.error is not None:
            raise outcome.error
        answer: store.Answer = outcome.value
        return _json(
            {
                "status": answer.status,
                "request_id": request_id,
                "transaction_id": money.transaction_id,
                "currency": answer.currency,
                "balance_minor": answer.balance_minor,
                "replay": answer.replay,
            }
        )

    return view


def _instant(query: Mapping[str, str], name: str) -> datetime | None:
    value = query.get(name)
    if value is None:
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRequestError(f"{name} must be an ISO 8601 date-time") from exc
    # A time without an offset is read as UTC rather than the server's local zone.
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def _whole(query: Mapping[str, str], name: str, default: int, lowest: int, highest: int) -> int:
    value = query.get(name, str(default))
    if not (value.isascii() and value.isdigit()) or not lowest <= int(value) <= highest:
        raise InvalidRequestError(f"{name} must be an integer from {lowest} to {highest}")
    return int(value)


async def _transactions(request: web.Request) -> web.Response:
    query = request.query
    entries, next_seq = await store.list_transactions(
        request.app[PAM_POOL],
        since=_instant(query, "since"),
        until=_instant(query, "until"),
        after=_whole(query, "after", 0, 0, MAX_CURSOR),
        limit=_whole(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
    )
    cursor = None if next_seq is None else str(next_seq)
    return _json({"status": Status.OK, "transactions": entries, "next_cursor": cursor})


async def _set_player(request: web.Request) -> web.Response:
    data = await _body(request)
    blocked = data.get("blocked")
    if blocked is not None and not isinstance(blocked, bool):
        raise InvalidRequestError("blocked must be a boolean")
    player = await store.set_player(
        request.app[PAM_POOL],
        _text(data, "player_id"),
        _currency(data),
        _minor(data, "balance_minor"),
        blocked,
    )
    return _json(player)


async def _get_player(request: web.Request) -> web.Response:
    player = await store.get_player(request.app[PAM_POOL], request.match_info["player_id"])
    if player is None:
        return _error(Status.PLAYER_NOT_FOUND, web.HTTPNotFound.status_code, "no such player")
    return _json(player)


async def _livez(_: web.Request) -> web.Response:
    return _json({"status": Status.OK})
