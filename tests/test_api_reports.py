"""Finance in the Operator API: GET /v1/reports/ggr and /v1/reconciliations, for the caller's operator."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

from api_support import *  # noqa: F403 -- the api fixture
from api_support import ApiEnv

from gateway import keys
from wallet.reports import as_csv, ggr


async def _play(api: ApiEnv, player: str) -> None:
    """One bet and its win on op1 through the generic provider."""
    await api.open_player("op1", player)
    session = await api.app[keys.SESSIONS].create("op1", player, "EUR", "generic", "g1")
    base = {"operator": "op1", "player_id": player, "currency": "EUR", "round_id": "r1", "game_id": "g1"}
    bet = base | {"session_token": session.token, "transaction_id": "b1", "amount": "4.00"}
    assert (await api.generic_call("debit", bet)).ok
    assert (await api.generic_call("credit", base | {"transaction_id": "w1", "amount": "1.50"})).ok


async def test_ggr_answers_the_report_as_json_and_csv_for_the_callers_operator(api: ApiEnv) -> None:
    """The same rows as the report query, as JSON or CSV; another operator sees none of them."""
    await _play(api, "p1")
    today = datetime.now(UTC).date()
    async with api.app[keys.PG_POOL].acquire() as conn:
        rows = await ggr(conn, "op1", today, today)
    assert [(r.bets_minor, r.wins_minor, r.ggr_minor) for r in rows] == [(400, 150, 250)]
    window = {"since": today.isoformat(), "until": today.isoformat()}
    reply = await api.as_("op1").get("/v1/reports/ggr", params=window)
    assert reply.status == 200
    expected = [{**dataclasses.asdict(r), "day": r.day.isoformat()} for r in rows]
    assert reply.body["rows"] == expected
    other = await api.as_("op2", "jwt").get("/v1/reports/ggr", params=window)
    assert (other.status, other.body["rows"]) == (200, [])
    # CSV is not JSON, so it is read here directly, signed as the client signs every call.
    path = f"/v1/reports/ggr?since={today}&until={today}&format=csv"
    async with api.client.get(path, headers=api.as_("op1")._auth_headers("GET", path, b"")) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/csv"
        assert await resp.text() == as_csv(rows)


async def test_ggr_refuses_a_bad_window(api: ApiEnv) -> None:
    """Missing, malformed, reversed or over-long windows are 400 problems."""
    client = api.as_("op1")
    today = datetime.now(UTC).date()
    cases = [
        {"since": today.isoformat()},
        {"since": "yesterday", "until": today.isoformat()},
        {"since": today.isoformat(), "until": (today - timedelta(days=1)).isoformat()},
        {"since": (today - timedelta(days=400)).isoformat(), "until": today.isoformat()},
        {"since": today.isoformat(), "until": today.isoformat(), "format": "xml"},
    ]
    for params in cases:
        reply = await client.get("/v1/reports/ggr", params=params, check_request=False)
        assert (reply.status, reply.body["code"]) == (400, "invalid_request"), params


async def _run(api: ApiEnv, operator: str) -> int:
    """Store a reconciliation run with one reported difference, as `wallet.reconciliation.run` does."""
    now = datetime.now(UTC)
    async with api.app[keys.PG_POOL].acquire() as conn:
        run_id = await conn.fetchval(
            "INSERT INTO croupier.reconciliations"
            " (operator, since, until, horizon_s, ours, theirs, started_at)"
            " VALUES ($1, $2, $3, 600, 3, 4, $3) RETURNING id",
            operator,
            now - timedelta(hours=1),
            now,
        )
        await conn.execute(
            "INSERT INTO croupier.reconciliation_differences"
            " (reconciliation_id, transaction_id, kind, action, outcome, reason, ours, theirs)"
            " VALUES ($1, $2, 'unknown_to_gateway', 'report', 'reported', 'a stranger', NULL,"
            " '{\"type\": \"credit\"}')",
            run_id,
            uuid.uuid4(),
        )
    return int(run_id)


async def test_reconciliations_are_listed_and_shown_to_their_operator_only(api: ApiEnv) -> None:
    """op1 lists and reads its own runs; op2's run is not found for op1."""
    mine, theirs = await _run(api, "op1"), await _run(api, "op2")
    listed = await api.as_("op1").get("/v1/reconciliations")
    assert listed.status == 200
    assert [(r["id"], r["differences"], r["unhealed"]) for r in listed.body["reconciliations"]] == [
        (mine, 1, 1)
    ]
    detail = await api.as_("op1").get(f"/v1/reconciliations/{mine}")
    assert detail.status == 200
    assert [(i["kind"], i["outcome"], i["operator"]) for i in detail.body["items"]] == [
        ("unknown_to_gateway", "reported", {"type": "credit"})
    ]
    hidden = await api.as_("op1").get(f"/v1/reconciliations/{theirs}")
    assert (hidden.status, hidden.body["code"]) == (404, "not_found")
    junk = await api.as_("op1").get("/v1/reconciliations/abc", check_request=False)
    assert junk.status == 404
