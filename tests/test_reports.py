"""GGR reports: every figure recomputed from the raw ledger entries and compared."""

from __future__ import annotations

import asyncio
import os
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from helpers import *  # noqa: F403 -- the harness fixtures
from helpers import Gateway, Harness

from wallet.reports import GgrRow, as_csv, ggr, live

CROUPIER = str(Path(sys.executable).parent / "croupier")
CONFIG = Path(__file__).resolve().parent.parent / "config" / "croupier.toml"


async def play(gw: Gateway) -> None:
    """Bets, wins, a free-round win, a jackpot and a refund, for two players in two games."""
    for player in ("p1", "p2"):
        await gw.open_player(player, 100_000)
    t1, t2 = await gw.session("p1"), await gw.session("p2", game_id="g2")
    calls = [
        gw.debit("b1", "1.00", token=t1, round_id="r1"),
        gw.credit("w1", "0.50", round_id="r1"),
        gw.debit("b2", "2.00", token=t1, round_id="r2"),
        gw.rollback("rb2", "b2", round_id="r2"),
        gw.credit("fr1", "3.00", round_id="fr-1", kind="freeround"),
        gw.debit("b3", "5.00", token=t2, round_id="r3", player_id="p2", game_id="g2"),
        gw.credit("w3", "7.25", round_id="r3", player_id="p2", game_id="g2"),
        gw.credit("j3", "1.00", round_id="j-3", kind="jackpot", player_id="p2", game_id="g2"),
    ]
    for call in calls:
        answer = await call
        assert answer.ok, answer


def recompute(raw: list[Any]) -> list[GgrRow]:
    """Compute the report in Python from raw entries with their operations."""
    sums: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(
        lambda: {"b": 0, "w": 0, "f": 0, "r": 0, "all": 0, "rounds": set(), "players": set()}
    )
    for e in raw:
        key = (e["day"], e["provider"], e["game"] or "", e["currency"])
        acc = sums[key]
        if e["kind"] == "debit":
            acc["b"] -= e["amount_minor"]
        elif e["kind"] == "credit" and e["credit_kind"] == "freeround":
            acc["f"] += e["amount_minor"]
        elif e["kind"] == "credit":
            acc["w"] += e["amount_minor"]
        elif e["kind"] == "rollback":
            acc["r"] += e["amount_minor"]
        acc["all"] += e["amount_minor"]
        acc["rounds"].add((e["player_id"], e["round_id"]))
        acc["players"].add(e["player_id"])
    return [
        GgrRow(*key, a["b"], a["w"], a["f"], a["r"], -a["all"], len(a["rounds"]), len(a["players"]))
        for key, a in sorted(sums.items())
    ]


async def test_every_ggr_figure_equals_its_recomputation_from_the_entries(harness: Harness) -> None:
    """The SQL report and a recomputation in Python from the raw entries agree, figure by figure."""
    gw = await harness.gateway("ledger")
    await play(gw)
    today = datetime.now(UTC).date()  # after play: the entries' own day
    async with gw.pool.acquire() as conn:
        report = await ggr(conn, "op1", today - timedelta(days=1), today)
        raw = await conn.fetch(
            "SELECT (e.created_at AT TIME ZONE 'UTC')::date AS day, o.provider, e.currency, e.amount_minor,"
            " o.kind, o.credit_kind, o.player_id, o.round_id,"
            " coalesce(o.game_id, (SELECT r.game_id FROM croupier.rounds r WHERE r.provider = o.provider"
            "  AND r.operator = o.operator AND r.player_id = o.player_id"
            "  AND r.round_id = o.round_id)) AS game"
            " FROM croupier.entries e JOIN croupier.operations o ON o.id = e.operation_id"
            " WHERE e.operator = 'op1'"
        )
    assert report == recompute(list(raw))
    # And by hand: g1 took 1.00 + 2.00, paid 0.50 and 3.00 in free rounds, refunded 2.00.
    by_game = {row.game_id: row for row in report}
    g1 = by_game["g1"]
    assert (g1.bets_minor, g1.wins_minor, g1.freeround_wins_minor, g1.refunds_minor) == (300, 50, 300, 200)
    assert (g1.ggr_minor, g1.rounds, g1.players) == (300 - 50 - 300 - 200, 3, 1)
    g2 = by_game["g2"]
    assert (g2.bets_minor, g2.wins_minor, g2.ggr_minor, g2.rounds, g2.players) == (500, 825, -325, 2, 1)
    # The opening balances are adjustments, not play: they are in no figure.
    assert sum(row.ggr_minor for row in report) == -sum(e["amount_minor"] for e in raw)


async def test_the_window_is_whole_utc_days_and_csv_has_every_column(harness: Harness) -> None:
    """Yesterday alone holds nothing played today; the CSV header names each figure."""
    gw = await harness.gateway("ledger")
    await play(gw)
    today = datetime.now(UTC).date()  # after play: the entries' own day
    async with gw.pool.acquire() as conn:
        assert await ggr(conn, "op1", today - timedelta(days=2), today - timedelta(days=1)) == []
        rows = await ggr(conn, "op1", today, today)
        assert await ggr(conn, "someone-else", today, today) == []
    text = as_csv(rows)
    header, *lines = text.splitlines()
    assert header == (
        "day,provider,game_id,currency,bets_minor,wins_minor,freeround_wins_minor,refunds_minor,"
        "ggr_minor,rounds,players"
    )
    assert len(lines) == len(rows) == 2
    assert lines[0].startswith(f"{today.isoformat()},generic,g1,EUR,300,50,300,200,-250,3,1")


async def test_the_command_prints_the_same_figures(harness: Harness) -> None:
    """`croupier report ggr` prints the report as CSV, JSON or a table, from the same query."""
    gw = await harness.gateway("ledger")
    await play(gw)
    today = datetime.now(UTC).date()  # after play: the entries' own day
    async with gw.pool.acquire() as conn:
        rows = await ggr(conn, "op1", today, today)
    env = {**os.environ, "DATABASE_URL": harness.database_url, "REDIS_URL": harness.redis_url}
    base = ("report", "ggr", "--config", str(CONFIG), "--operator", "op1", "--since", today.isoformat())
    outputs = {}
    for fmt in ("csv", "json", "table"):
        proc = await asyncio.create_subprocess_exec(
            CROUPIER,
            *base,
            "--format",
            fmt,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        outputs[fmt] = out.decode()
    assert outputs["csv"] == as_csv(rows) + "\n"
    assert [r["ggr_minor"] for r in orjson.loads(outputs["json"])] == [r.ggr_minor for r in rows]
    assert "ggr" in outputs["table"].splitlines()[0]
    assert len(outputs["table"].splitlines()) == 1 + len(rows)


async def test_a_closed_day_is_rolled_up_once_and_answers_as_the_entries_do(harness: Harness) -> None:
    """Seen from two days later, today is closed: its roll-up is built once and equals the live rows."""
    gw = await harness.gateway("ledger")
    await play(gw)
    today = datetime.now(UTC).date()
    later = datetime.now(UTC) + timedelta(days=2)
    async with gw.pool.acquire() as conn:
        reference = await live(conn, "op1", today, today)
        rolled = await ggr(conn, "op1", today - timedelta(days=1), today, now=later)
        again = await ggr(conn, "op1", today - timedelta(days=1), today, now=later)
        built = await conn.fetch("SELECT day FROM croupier.ggr_days WHERE operator = 'op1' ORDER BY day")
        stored = await conn.fetchval("SELECT count(*) FROM croupier.ggr_daily WHERE operator = 'op1'")
        # Still open as seen today: the same figures, from the entries.
        assert await ggr(conn, "op1", today, today) == reference
    assert reference
    assert rolled == again == reference
    # Both days are marked built (the empty one too), and each row is stored once.
    assert [r["day"] for r in built] == [today - timedelta(days=1), today]
    assert stored == len(reference)
