"""`croupier games recall <round-id>`: rebuild a round from the database alone and replay it."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from pathlib import Path

import asyncpg
import orjson

from providers.house import recall, store

EXIT_REPRODUCED, EXIT_MISMATCH, EXIT_NOT_FOUND = 0, 1, 2


async def _recall(round_id: uuid.UUID, database_url: str) -> tuple[store.StoredRound, recall.Replay] | None:
    conn = await asyncpg.connect(database_url)
    try:
        stored = await store.find_round(conn, round_id)
        if stored is None:
            return None
        game = await recall.game_of(conn, stored)
        return stored, recall.replay(game, stored)
    finally:
        await conn.close()


def recall_main(round_id: str, database_url: str, *, as_json: bool = False) -> int:
    """Print a stored round and its replay; exit 0 if reproduced, 1 on a mismatch, 2 if not found."""
    try:
        parsed = uuid.UUID(round_id)
    except ValueError:
        print(f"not a round id (a UUID): {round_id!r}", file=sys.stderr)  # noqa: T201
        return EXIT_NOT_FOUND
    found = asyncio.run(_recall(parsed, database_url))
    if found is None:
        print(f"no round {parsed} in {store.SCHEMA}.rounds", file=sys.stderr)  # noqa: T201
        return EXIT_NOT_FOUND
    stored, check = found
    if as_json:
        # The operator's own view: a refused round's void outcome is shown too, for the record.
        payload = recall.recall_payload(stored, check, reveal_void=True)
        print(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())  # noqa: T201
    else:
        print(recall.recall_text(stored, check))  # noqa: T201
    return EXIT_REPRODUCED if check.reproduced else EXIT_MISMATCH


def _database_url(args: argparse.Namespace) -> str | None:
    """Return the database from --database-url, DATABASE_URL or the configuration file."""
    if args.database_url:
        return str(args.database_url)
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    from gateway import settings  # noqa: PLC0415 -- only when no URL was given

    try:
        return settings.load(Path(args.config) if args.config else None).database_url
    except settings.SettingsError:
        return None


def cmd_recall(args: argparse.Namespace) -> int:
    """Handle `croupier games recall`."""
    url = _database_url(args)
    if url is None:
        print("no database: give --database-url or set DATABASE_URL", file=sys.stderr)  # noqa: T201
        return EXIT_NOT_FOUND
    return recall_main(args.round_id, url, as_json=args.json)


def add_recall(games_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `recall` to the `games` command's subcommands."""
    parser = games_subparsers.add_parser(
        "recall", help="replay a stored round from the database and show that it reproduces exactly"
    )
    parser.add_argument("round_id", help="the round's id (a UUID)")
    parser.add_argument("--database-url", help="PostgreSQL URL (default: $DATABASE_URL or the config's)")
    parser.add_argument("--config", help="TOML settings to read the database URL from")
    parser.add_argument("--json", action="store_true", help="print the recall as JSON")
    parser.set_defaults(func=cmd_recall)
