"""Finance endpoints: the GGR report and the reconciliations, each for the caller's own operator."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from gateway import keys
from gateway.api import fields
from gateway.api.auth import operator_of
from gateway.api.problems import ApiError, Code
from wallet.reports import as_csv, ggr

# A report spans at most this many days: a year of one operator's games is a page, not a dump.
MAX_DAYS = 366
DEFAULT_RUNS, MAX_RUNS = 20, 100

routes = web.RouteTableDef()


def _day(request: web.Request, name: str) -> date:
    raw = request.query.get(name)
    if raw is None:
        raise fields.invalid(f"{name} is required (YYYY-MM-DD)")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise fields.invalid(f"{name} must be a day, YYYY-MM-DD") from None


def _json(body: dict[str, object]) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


@routes.get("/reports/ggr")
async def get_ggr(request: web.Request) -> web.Response:
    """Return GGR per UTC day, provider, game and currency, as JSON or CSV."""
    fields.only(request.query, ("since", "until", "format"))
    since, until = _day(request, "since"), _day(request, "until")
    if since > until:
        raise fields.invalid("since must not be after until")
    if (until - since).days >= MAX_DAYS:
        raise fields.invalid(f"a report spans at most {MAX_DAYS} days")
    form = request.query.get("format", "json")
    if form not in ("json", "csv"):
        raise fields.invalid("format must be json or csv")
    async with request.config_dict[keys.PG_POOL].acquire() as conn:
        rows = await ggr(conn, operator_of(request), since, until)
    if form == "csv":
        return web.Response(text=as_csv(rows), content_type="text/csv")
    return _json({"rows": [dataclasses.asdict(row) for row in rows]})


_RUN = (
    "id, since, until, horizon_s, ours, theirs, scheduled, started_at, finished_at,"
    " (SELECT count(*) FROM croupier.reconciliation_differences d"
    "  WHERE d.reconciliation_id = r.id) AS differences,"
    " (SELECT count(*) FROM croupier.reconciliation_differences d"
    "  WHERE d.reconciliation_id = r.id AND d.outcome = 'reported') AS unhealed"
)


def _run_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "since": fields.iso(row["since"]),
        "until": fields.iso(row["until"]),
        "horizon_s": row["horizon_s"],
        "gateway_transfers": row["ours"],
        "operator_transactions": row["theirs"],
        "scheduled": row["scheduled"],
        "started_at": fields.iso(row["started_at"]),
        "finished_at": fields.iso(row["finished_at"]),
        "differences": row["differences"],
        "unhealed": row["unhealed"],
    }


@routes.get("/reconciliations")
async def list_reconciliations(request: web.Request) -> web.Response:
    """Return the operator's latest reconciliation runs, newest first."""
    fields.only(request.query, ("limit",))
    limit = fields.query_limit(request.query.get("limit"), DEFAULT_RUNS, MAX_RUNS)
    async with request.config_dict[keys.PG_POOL].acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {_RUN} FROM croupier.reconciliations r WHERE operator = $1 ORDER BY id DESC LIMIT $2",
            operator_of(request),
            limit,
        )
    return _json({"reconciliations": [_run_json(row) for row in rows]})


@routes.get("/reconciliations/{id}")
async def get_reconciliation(request: web.Request) -> web.Response:
    """Return one run with every difference it found and what became of it."""
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:  # noqa: PLR2004 -- fits a bigint
        raise ApiError(404, Code.NOT_FOUND, "no such reconciliation")
    async with request.config_dict[keys.PG_POOL].acquire() as conn:
        run = await conn.fetchrow(
            f"SELECT {_RUN} FROM croupier.reconciliations r WHERE id = $1 AND operator = $2",
            int(raw),
            operator_of(request),
        )
        if run is None:
            raise ApiError(404, Code.NOT_FOUND, "no such reconciliation")
        diffs = await conn.fetch(
            "SELECT transaction_id, kind, action, outcome, reason, ours, theirs"
            " FROM croupier.reconciliation_differences WHERE reconciliation_id = $1 ORDER BY id",
            run["id"],
        )
    body = _run_json(run) | {
        "items": [
            {
                "transaction_id": str(d["transaction_id"]),
                "kind": d["kind"],
                "action": d["action"],
                "outcome": d["outcome"],
                "reason": d["reason"],
                "gateway": orjson.loads(d["ours"]) if d["ours"] else None,
                "operator": orjson.loads(d["theirs"]) if d["theirs"] else None,
            }
            for d in diffs
        ]
    }
    return _json(body)
