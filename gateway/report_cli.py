"""`croupier report ggr`: an operator's gross gaming revenue per provider, game, currency and day."""

from __future__ import annotations

import argparse
from dataclasses import astuple
from datetime import UTC, date, datetime, timedelta

import orjson

from gateway.runtime import connect_database
from gateway.settings import SettingsError
from wallet.reports import GgrRow, as_csv, ggr


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the report subcommand; the caller sets its func."""
    cmd = sub.add_parser("report", help="reports from the ledger (GGR)")
    cmd.add_argument("report", choices=["ggr"])
    cmd.add_argument("--config")
    cmd.add_argument("--operator", required=True)
    cmd.add_argument("--since", type=_day, help="first UTC day, YYYY-MM-DD (default: yesterday)")
    cmd.add_argument("--until", type=_day, help="last UTC day, included (default: --since)")
    cmd.add_argument("--format", choices=["table", "csv", "json"], default="table")
    return cmd


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD)") from None


async def report(database_url: str, args: argparse.Namespace) -> str:
    """Return the asked report, formatted."""
    since = args.since or datetime.now(UTC).date() - timedelta(days=1)
    until = args.until or since
    if since > until:
        raise SettingsError("--since must not be after --until")
    conn = await connect_database(database_url)
    try:
        rows = await ggr(conn, args.operator, since, until)
    finally:
        await conn.close()
    if args.format == "csv":
        return as_csv(rows)
    if args.format == "json":
        return orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode()
    return table(rows) if rows else f"no play of operator {args.operator} from {since} to {until}"


# The text columns are left-aligned; from this column on, the figures are right-aligned.
_FIRST_FIGURE = 4


def table(rows: list[GgrRow]) -> str:
    """Return rows as an aligned plain-text table, amounts in minor units."""
    head = ("day", "provider", "game", "cur", "bets", "wins", "free", "refunds", "ggr", "rounds", "players")
    cells = [head] + [tuple(str(value) for value in astuple(r)) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    return "\n".join(
        "  ".join(
            c.rjust(w) if i >= _FIRST_FIGURE else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    )
