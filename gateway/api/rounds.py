"""History endpoints: a player's rounds, one round with its transactions, and a provider's transaction id."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from gateway import keys
from gateway.api import fields
from gateway.api.auth import operator_of
from gateway.api.problems import ApiError, Code
from wallet import history

MAX_NAME = 64
MAX_CURSOR = 256
DEFAULT_LIMIT = 100
MAX_LIMIT = 500
_LIST_QUERY = ("player_id", "from", "to", "provider", "round_id", "limit", "cursor")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

routes = web.RouteTableDef()


def encode_cursor(round_: asyncpg.Record) -> str:
    """Return the opaque position after a round: its opening moment to the microsecond, and its id."""
    micros = (round_["opened_at"] - _EPOCH) // _MICROSECOND
    raw = orjson.dumps([micros, str(round_["id"])])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Return the position a cursor names, or raise 400 for one this API did not give out."""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, orjson.JSONDecodeError, ValueError):
        data = None
    match data:
        case [int() as micros, str() as round_id] if not isinstance(micros, bool):
            try:
                return _EPOCH + micros * _MICROSECOND, uuid.UUID(round_id)
            except (ValueError, OverflowError):
                pass
    raise fields.invalid("cursor is not one this API gave out")


def _moment(raw: str | None, name: str) -> datetime | None:
    return None if raw is None else fields.timestamp(raw, name)


def round_query(request: web.Request) -> history.RoundQuery:
    """Read the listing's query string strictly."""
    query = request.query
    fields.only(query, _LIST_QUERY)
    repeated = sorted({name for name in query if len(query.getall(name)) > 1})
    if repeated:
        raise fields.invalid(f"give each parameter once: {', '.join(repeated)}")
    since = _moment(query.get("from"), "from")
    until = _moment(query.get("to"), "to")
    if since is not None and until is not None and since > until:
        raise fields.invalid("from must not be after to")
    cursor = fields.text(query, "cursor", required=False, max_length=MAX_CURSOR)
    return history.RoundQuery(
        operator=operator_of(request),
        player_id=fields.required_text(query, "player_id"),
        since=since,
        until=until,
        provider=fields.text(query, "provider", required=False, max_length=MAX_NAME),
        round_id=fields.text(query, "round_id", required=False),
        after=None if cursor is None else decode_cursor(cursor),
        limit=fields.query_limit(query.get("limit"), DEFAULT_LIMIT, MAX_LIMIT),
    )


def round_json(round_: asyncpg.Record, statuses: set[str]) -> dict[str, Any]:
    """Return a round as the Round schema has it."""
    bets, wins, refunds = round_["bets_minor"], round_["wins_minor"], round_["refunds_minor"]
    return {
        "id": str(round_["id"]),
        "provider": round_["provider"],
        "round_id": round_["round_id"],
        "player_id": round_["player_id"],
        "game_id": round_["game_id"],
        "currency": round_["currency"],
        "status": round_["state"],
        "settlement": history.settlement(round_, statuses).value,
        "bets_minor": bets,
        "wins_minor": wins,
        "refunds_minor": refunds,
        "net_minor": wins + refunds - bets,
        "opened_at": fields.iso(round_["opened_at"]),
        "closed_at": fields.iso(round_["closed_at"]),
    }


def transaction_json(row: asyncpg.Record) -> dict[str, Any]:
    """Return a stored operation as the Transaction schema has it."""
    delivery = None
    if row["delivery_state"] is not None:
        delivery = {
            "state": row["delivery_state"],
            "attempts": row["delivery_attempts"],
            "last_error": row["delivery_error"],
            "delivered_at": fields.iso(row["delivered_at"]),
        }
    return {
        "transaction_id": str(row["transaction_id"]),
        "provider": row["provider"],
        "external_id": row["external_id"],
        "kind": row["kind"],
        "credit_kind": row["credit_kind"],
        "player_id": row["player_id"],
        "round_id": row["round_id"],
        "game_id": row["game_id"],
        "currency": row["currency"],
        # An end of round moves no money, whatever amount a provider put in it.
        "amount_minor": None if row["kind"] == "end_round" else row["amount_minor"],
        "status": row["status"],
        "reason": row["reason"],
        "reference_id": row["reference_id"],
        "campaign_id": row["campaign_id"],
        "created_at": fields.iso(row["created_at"]),
        "updated_at": fields.iso(row["updated_at"]),
        "delivery": delivery,
    }


def _json(value: object) -> web.Response:
    return web.Response(body=orjson.dumps(value), content_type="application/json")


@routes.get("/rounds")
async def list_rounds(request: web.Request) -> web.Response:
    """List one player's rounds in a window, newest first, a page at a time."""
    query = round_query(request)
    # One round past the page says whether there is a next page.
    page = dataclasses.replace(query, limit=query.limit + 1)
    async with request.config_dict[keys.PG_POOL].acquire() as conn:
        rows = await history.list_rounds(conn, page)
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return _json(
        {
            "rounds": [round_json(row, set(row["statuses"])) for row in rows],
            "next_cursor": encode_cursor(rows[-1]) if more else None,
        }
    )


@routes.get("/rounds/{id}")
async def get_round(request: web.Request) -> web.Response:
    """Return one of the operator's rounds with every transaction and its status."""
    fields.only(request.query, ())
    try:
        round_uuid = uuid.UUID(request.match_info["id"])
    except ValueError:
        raise fields.invalid("id must be a UUID") from None
    async with request.config_dict[keys.PG_POOL].acquire() as conn:
        found = await history.get_round(conn, operator_of(request), round_uuid)
    if found is None:
        raise ApiError(404, Code.NOT_FOUND, "no such round")
    round_, transactions = found
    body = round_json(round_, history.statuses_of(transactions))
    body["transactions"] = [transaction_json(t) for t in transactions]
    return _json(body)


@routes.get("/transactions/{provider}/{external_id}")
async def get_transactions(request: web.Request) -> web.Response:
    """Return every operation this operator's players have under a provider's transaction id."""
    async with request.config_dict[keys.PG_POOL].acquire() as conn:
        rows = await history.find_transactions(
            conn, operator_of(request), request.match_info["provider"], request.match_info["external_id"]
        )
    if not rows:
        raise ApiError(404, Code.NOT_FOUND, "no such transaction")
    return _json({"transactions": [transaction_json(row) for row in rows]})
