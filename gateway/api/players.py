"""Responsible-gaming endpoints: a player's limits, and blocking or self-excluding a player at once.

The limits answered are those in force: the player's own, else the operator's defaults (see
wallet.limits for how they merge). They are enforced by the wallet core in a bet's first
transaction, so a refusal is exact and replays; wins and refunds are always paid.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from gateway import keys
from gateway.api import fields
from gateway.api.auth import operator_of
from gateway.api.problems import ApiError, Code
from wallet import limits
from wallet.db import Connection

AMOUNT_FIELDS = ("max_bet_minor", "loss_limit_minor")
SECONDS_FIELDS = ("session_limit_s", "reality_check_s")
LIMIT_FIELDS = ("currency", *AMOUNT_FIELDS, "loss_period", *SECONDS_FIELDS)
BLOCK_FIELDS = ("state", "reason", "until")
MIN_SECONDS, MAX_SECONDS = 60, 86_400
MAX_REASON = 256

routes = web.RouteTableDef()


def _player_id(request: web.Request) -> str:
    player_id = request.match_info["player_id"]
    if not 1 <= len(player_id) <= fields.MAX_ID:
        raise fields.invalid(f"player_id must be 1 to {fields.MAX_ID} characters")
    return player_id


def _block_json(block: limits.Block | None) -> dict[str, Any] | None:
    if block is None:
        return None
    return {
        "state": block.state,
        "reason": block.reason,
        "since": fields.iso(block.since),
        "until": fields.iso(block.until),
    }


async def _answer(
    request: web.Request, conn: Connection, player_id: str, currency: str | None = None
) -> web.Response:
    """Answer the limits in force, with the net loss of the period where a loss limit is set."""
    operator = operator_of(request)
    policy = request.config_dict[keys.WALLET].runtime(operator).policy
    force = limits.in_force(
        policy, operator, player_id, await limits.own(conn, operator, player_id), currency
    )
    loss = None
    if force.loss_limit_minor is not None and force.currency is not None and force.loss_period is not None:
        loss = await limits.loss_in_period(conn, operator, player_id, force.currency, force.loss_period)
    body = {
        "player_id": player_id,
        "currency": force.currency,
        "max_bet_minor": force.max_bet_minor,
        "loss_limit_minor": force.loss_limit_minor,
        "loss_period": force.loss_period,
        "session_limit_s": force.session_limit_s,
        "reality_check_s": force.reality_check_s,
        "block": _block_json(force.block),
        "loss_in_period_minor": loss,
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json")


@routes.get("/players/{player_id}/limits")
async def get_limits(request: web.Request) -> web.Response:
    """Return the player's limits in force (for `?currency=`, else the currency of its own limits)."""
    player_id = _player_id(request)
    fields.only(request.query, ("currency",))
    asked = request.query.get("currency")
    currency = None if asked is None else fields.currency(request, asked)
    async with request.config_dict[keys.PG_POOL].acquire() as conn:
        return await _answer(request, conn, player_id, currency)


def _limit_changes(request: web.Request, data: dict[str, Any]) -> dict[str, Any]:
    """Read the fields present in a limits body; a null clears the player's own value."""
    changes: dict[str, Any] = {}
    if "currency" in data:
        value = data["currency"]
        changes["currency"] = None if value is None else fields.currency(request, value)
    for name in AMOUNT_FIELDS:
        if name in data:
            changes[name] = fields.integer(data, name, required=False)
    if "loss_period" in data:
        changes["loss_period"] = fields.choice(data, "loss_period", limits.LOSS_PERIODS)
    for name in SECONDS_FIELDS:
        if name in data:
            changes[name] = fields.integer(
                data, name, required=False, minimum=MIN_SECONDS, maximum=MAX_SECONDS
            )
    return changes


def _merge(stored: asyncpg.Record, changes: dict[str, Any]) -> dict[str, Any]:
    """Return the player's own limits after the changes, or raise 400 if they do not hold together."""
    merged = {name: changes[name] if name in changes else stored[name] for name in LIMIT_FIELDS}
    amounts = [name for name in AMOUNT_FIELDS if merged[name] is not None]
    if amounts and merged["currency"] is None:
        raise fields.invalid(f"{', '.join(amounts)} need a currency")
    if stored["currency"] is not None and merged["currency"] != stored["currency"]:
        # An amount is only meaningful in its currency: a currency change restates (or clears) them.
        kept = [name for name in AMOUNT_FIELDS if stored[name] is not None and name not in changes]
        if kept:
            raise fields.invalid(f"changing the currency needs {', '.join(kept)} restated or cleared")
    return merged


@routes.put("/players/{player_id}/limits")
async def set_limits(request: web.Request) -> web.Response:
    """Set the fields given of the player's own limits; they apply to the player's next bet."""
    operator, player_id = operator_of(request), _player_id(request)
    data = await fields.json_body(request)
    fields.only(data, LIMIT_FIELDS)
    changes = _limit_changes(request, data)
    async with request.config_dict[keys.PG_POOL].acquire() as conn:
        async with conn.transaction():
            stored = await limits.lock_own(conn, operator, player_id)
            # A refusal here rolls the transaction back: a bad body writes nothing.
            await limits.save(conn, operator, player_id, **_merge(stored, changes))
        return await _answer(request, conn, player_id)


def _block_request(data: dict[str, Any]) -> tuple[str, str | None, datetime | None]:
    """Read a block body: state, reason and until (required and future for a self-exclusion)."""
    fields.only(data, BLOCK_FIELDS)
    state = fields.choice(data, "state", limits.BLOCK_STATES)
    if state is None:
        raise fields.invalid("state is required")
    reason = fields.text(data, "reason", required=False, max_length=MAX_REASON)
    until = fields.timestamp(data["until"], "until") if "until" in data else None
    if state == "self_excluded" and until is None:
        raise fields.invalid("a self-exclusion needs until")
    if until is not None and until <= datetime.now(UTC):
        raise fields.invalid("until must be in the future")
    return state, reason, until


def _keep_self_exclusion(stored: asyncpg.Record, state: str, until: datetime | None) -> None:
    """Refuse (409) a block that would shorten a self-exclusion in force or make it liftable."""
    if not stored["blocked_now"] or stored["block_state"] != "self_excluded":
        return
    excluded_until: datetime = stored["blocked_until"]
    if state != "self_excluded" or until is None or until < excluded_until:
        raise ApiError(
            409,
            Code.CONFLICT,
            f"the player is self-excluded until {fields.iso(excluded_until)}; it may only be extended",
        )


@routes.put("/players/{player_id}/block")
async def block_player(request: web.Request) -> web.Response:
    """Block or self-exclude a player: new bets are refused and the player's sessions end at once."""
    operator, player_id = operator_of(request), _player_id(request)
    state, reason, until = _block_request(await fields.json_body(request))
    async with request.config_dict[keys.PG_POOL].acquire() as conn:
        async with conn.transaction():
            stored = await limits.lock_own(conn, operator, player_id)
            _keep_self_exclusion(stored, state, until)
            await limits.set_block(conn, operator, player_id, state, reason, until)
        # The block is committed, so bets are refused from now on; the sessions (real and demo) end too.
        await request.config_dict[keys.SESSIONS].end_player(operator, player_id)
        return await _answer(request, conn, player_id)


@routes.delete("/players/{player_id}/block")
async def unblock_player(request: web.Request) -> web.Response:
    """Lift a player's block; a self-exclusion cannot be lifted before its end."""
    operator, player_id = operator_of(request), _player_id(request)
    async with request.config_dict[keys.PG_POOL].acquire() as conn:
        async with conn.transaction():
            stored = await limits.own(conn, operator, player_id, lock=True)
            if stored is None or not stored["blocked_now"]:
                raise ApiError(404, Code.NOT_FOUND, "the player has no block in force")
            if stored["block_state"] == "self_excluded":
                until = fields.iso(stored["blocked_until"])
                raise ApiError(409, Code.CONFLICT, f"the player is self-excluded until {until}")
            await limits.lift_block(conn, operator, player_id)
        return await _answer(request, conn, player_id)
