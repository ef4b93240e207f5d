"""Versioned SQL migrations, applied at start under an advisory lock."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from wallet.db import Connection

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One versioned SQL file."""

    version: int
    name: str
    sql: str


def load_migrations(package: str) -> list[Migration]:
    """Return the migrations shipped in a package's `migrations` folder, in order."""
    found = []
    for entry in resources.files(package).joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions in {package}")
    return found


def _lock_id(schema: str) -> int:
    # A stable 63-bit id per schema, so the gateway and the reference wallet never block each other.
    return int.from_bytes(hashlib.sha256(f"croupier.migrate.{schema}".encode()).digest()[:8]) >> 1


async def migrate(conn: Connection, package: str, schema: str) -> list[int]:
    """Apply the package's pending migrations to a schema and return the versions applied."""
    applied: list[int] = []
    # The session-level advisory lock makes two nodes starting together take turns.
    await conn.execute("SELECT pg_advisory_lock($1)", _lock_id(schema))
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = await conn.fetch(f'SELECT version FROM "{schema}".schema_migrations')
        done = {r["version"] for r in rows}
        for migration in load_migrations(package):
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(f'SET LOCAL search_path TO "{schema}"')
                await conn.execute(migration.sql)
                await conn.execute(
                    f'INSERT INTO "{schema}".schema_migrations (version, name) VALUES ($1, $2)',
                    migration.version,
                    migration.name,
                )
            applied.append(migration.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _lock_id(schema))
    return applied
