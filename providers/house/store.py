"""The house's own tables (schema provider_house): rounds, provably fair seeds, game configurations."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from wallet.db import Connection

# gateway.app.provider_schema("house"): where the gateway applies this package's migrations.
SCHEMA = "provider_house"
# The first key of the two-key advisory lock that serialises the requests of one round id.
_ROUND_LOCK_CLASS = 0x486F7573  # "Hous"

_ROUND_COLUMNS = """
    r.round_id, r.operator, r.player_id, r.currency, r.token_sha256, r.game, r.game_sha256,
    r.bet_minor, r.params, r.mode, r.seed_id, r.nonce, r.client_seed, r.draws, r.state,
    r.win_minor, r.status, r.refusal, r.balance_before_minor, r.balance_after_minor,
    r.created_at, r.updated_at, s.commitment, s.revealed_at,
    CASE WHEN s.revealed_at IS NOT NULL THEN s.server_seed END AS revealed_seed
"""


def token_digest(token: str) -> bytes:
    """Return the SHA-256 of a session token: rounds keep this, never the token itself."""
    return hashlib.sha256(token.encode()).digest()


def dumps(value: object) -> str:
    """Return JSON text for a jsonb parameter."""
    return orjson.dumps(value).decode()


@dataclass(frozen=True, slots=True)
class NewRound:
    """A round drawn and about to be stored, before its bet is debited."""

    round_id: uuid.UUID
    operator: str
    player_id: str
    currency: str
    token_sha256: bytes
    game: str
    game_sha256: bytes
    bet_minor: int
    params: dict[str, Any]
    mode: str
    seed_id: int | None
    nonce: int | None
    client_seed: str | None
    draws: list[tuple[int, int]]
    state: dict[str, Any]
    win_minor: int


@dataclass(frozen=True, slots=True)
class StoredRound(NewRound):
    """One round as stored: the drawn round, and its fate."""

    status: str
    refusal: str | None
    balance_before_minor: int | None
    balance_after_minor: int | None
    created_at: datetime
    commitment: str | None = None
    # The server seed, once its pair was rotated (revealed); None while it is still secret.
    revealed_seed: bytes | None = None

    @classmethod
    def from_record(cls, row: asyncpg.Record) -> StoredRound:
        """Build from a row selected with the round columns."""
        return cls(
            round_id=row["round_id"],
            operator=row["operator"],
            player_id=row["player_id"],
            currency=row["currency"],
            token_sha256=bytes(row["token_sha256"]),
            game=row["game"],
            game_sha256=bytes(row["game_sha256"]),
            bet_minor=int(row["bet_minor"]),
            params=orjson.loads(row["params"]),
            mode=row["mode"],
            seed_id=row["seed_id"],
            nonce=row["nonce"],
            client_seed=row["client_seed"],
            draws=[(int(n), int(value)) for n, value in orjson.loads(row["draws"])],
            state=orjson.loads(row["state"]),
            win_minor=int(row["win_minor"]),
            status=row["status"],
            refusal=row["refusal"],
            balance_before_minor=row["balance_before_minor"],
            balance_after_minor=row["balance_after_minor"],
            created_at=row["created_at"],
            commitment=row["commitment"],
            revealed_seed=None if row["revealed_seed"] is None else bytes(row["revealed_seed"]),
        )

    @property
    def shown(self) -> bool:
        """Return whether the outcome may be shown: only once the bet was accepted."""
        return self.status in ("accepted", "settled")


@dataclass(frozen=True, slots=True)
class SeedPair:
    """A player's provably fair seed pair as stored."""

    id: int
    operator: str
    player_id: str
    server_seed: bytes
    commitment: str
    client_seed: str
    next_nonce: int
    created_at: datetime
    revealed_at: datetime | None

    @classmethod
    def from_record(cls, row: asyncpg.Record) -> SeedPair:
        """Build from a seeds row."""
        return cls(
            id=row["id"],
            operator=row["operator"],
            player_id=row["player_id"],
            server_seed=bytes(row["server_seed"]),
            commitment=row["commitment"],
            client_seed=row["client_seed"],
            next_nonce=int(row["next_nonce"]),
            created_at=row["created_at"],
            revealed_at=row["revealed_at"],
        )

    def public(self) -> dict[str, Any]:
        """Return what the player may see: the server seed only once it is revealed."""
        shown: dict[str, Any] = {
            "commitment": self.commitment,
            "client_seed": self.client_seed,
            "next_nonce": self.next_nonce,
            "created_at": self.created_at.isoformat(),
        }
        if self.revealed_at is not None:
            shown |= {"server_seed": self.server_seed.hex(), "revealed_at": self.revealed_at.isoformat()}
        return shown


# Rounds.


async def lock_round_id(conn: Connection, round_id: uuid.UUID) -> None:
    """Serialise every request for one round id until the transaction ends (so one draw only)."""
    key = int.from_bytes(round_id.bytes[:4], "big", signed=True)
    await conn.execute("SELECT pg_advisory_xact_lock($1::int4, $2::int4)", _ROUND_LOCK_CLASS, key)


async def find_round(conn: Connection, round_id: uuid.UUID) -> StoredRound | None:
    """Return a stored round with its seed's commitment (and the seed once revealed)."""
    row = await conn.fetchrow(
        f"SELECT {_ROUND_COLUMNS} FROM {SCHEMA}.rounds r"
        f" LEFT JOIN {SCHEMA}.seeds s ON s.id = r.seed_id WHERE r.round_id = $1",
        round_id,
    )
    return None if row is None else StoredRound.from_record(row)


async def insert_round(conn: Connection, new: NewRound) -> None:
    """Store a drawn round; its id is unique, so a second copy fails rather than overwrites."""
    await conn.execute(
        f"INSERT INTO {SCHEMA}.rounds (round_id, operator, player_id, currency, token_sha256, game,"
        " game_sha256, bet_minor, params, mode, seed_id, nonce, client_seed, draws, state, win_minor)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $13, $14::jsonb,"
        " $15::jsonb, $16)",
        new.round_id,
        new.operator,
        new.player_id,
        new.currency,
        new.token_sha256,
        new.game,
        new.game_sha256,
        new.bet_minor,
        dumps(new.params),
        new.mode,
        new.seed_id,
        new.nonce,
        new.client_seed,
        dumps([list(draw) for draw in new.draws]),
        dumps(new.state),
        new.win_minor,
    )


async def mark_refused(conn: Connection | asyncpg.Pool, round_id: uuid.UUID, reason: str) -> None:
    """Record that the round's bet was refused: its outcome is void and is never shown."""
    await conn.execute(
        f"UPDATE {SCHEMA}.rounds SET status = 'refused', refusal = $2, updated_at = now()"
        " WHERE round_id = $1 AND status = 'drawn'",
        round_id,
        reason,
    )


async def mark_played(
    conn: Connection | asyncpg.Pool,
    round_id: uuid.UUID,
    *,
    settled: bool,
    balance_before_minor: int | None,
    balance_after_minor: int | None,
) -> None:
    """Record that the bet was accepted (and the round settled); the first balances seen stay."""
    await conn.execute(
        f"UPDATE {SCHEMA}.rounds SET"
        " status = CASE WHEN status = 'settled' OR $2 THEN 'settled' ELSE 'accepted' END,"
        " balance_before_minor = coalesce(balance_before_minor, $3),"
        " balance_after_minor = coalesce(balance_after_minor, $4), updated_at = now()"
        " WHERE round_id = $1",
        round_id,
        settled,
        balance_before_minor,
        balance_after_minor,
    )


async def recent_rounds(conn: Connection, operator: str, player_id: str, limit: int) -> list[StoredRound]:
    """Return a player's latest rounds, newest first."""
    rows = await conn.fetch(
        f"SELECT {_ROUND_COLUMNS} FROM {SCHEMA}.rounds r LEFT JOIN {SCHEMA}.seeds s ON s.id = r.seed_id"
        " WHERE r.operator = $1 AND r.player_id = $2 ORDER BY r.created_at DESC LIMIT $3",
        operator,
        player_id,
        limit,
    )
    return [StoredRound.from_record(row) for row in rows]


# Game configurations.


async def store_config(conn: Connection, sha256: bytes, game: str, config: str) -> None:
    """Keep a game's configuration text under its digest (once)."""
    await conn.execute(
        f"INSERT INTO {SCHEMA}.game_configs (sha256, game, config) VALUES ($1, $2, $3)"
        " ON CONFLICT (sha256) DO NOTHING",
        sha256,
        game,
        config,
    )


async def config_text(conn: Connection, sha256: bytes) -> str | None:
    """Return the configuration a round was played with."""
    value = await conn.fetchval(f"SELECT config FROM {SCHEMA}.game_configs WHERE sha256 = $1", sha256)
    return None if value is None else str(value)


# Provably fair seed pairs.


async def active_seed(
    conn: Connection, operator: str, player_id: str, *, lock: bool = False
) -> SeedPair | None:
    """Return the player's active (unrevealed) seed pair; locked for update when asked."""
    row = await conn.fetchrow(
        f"SELECT * FROM {SCHEMA}.seeds WHERE operator = $1 AND player_id = $2 AND revealed_at IS NULL"
        + (" FOR UPDATE" if lock else ""),
        operator,
        player_id,
    )
    return None if row is None else SeedPair.from_record(row)


async def create_seed(
    conn: Connection, operator: str, player_id: str, server_seed: bytes, commitment: str, client_seed: str
) -> None:
    """Start a pair unless the player already has an active one (two requests may race here)."""
    await conn.execute(
        f"INSERT INTO {SCHEMA}.seeds (operator, player_id, server_seed, commitment, client_seed)"
        " VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (operator, player_id) WHERE revealed_at IS NULL DO NOTHING",
        operator,
        player_id,
        server_seed,
        commitment,
        client_seed,
    )


async def take_nonce(conn: Connection, seed_id: int) -> int:
    """Return the pair's next nonce and count it used."""
    value = await conn.fetchval(
        f"UPDATE {SCHEMA}.seeds SET next_nonce = next_nonce + 1 WHERE id = $1 RETURNING next_nonce - 1",
        seed_id,
    )
    return int(value)


async def set_client_seed(conn: Connection, seed_id: int, client_seed: str) -> None:
    """Change the active pair's client seed; rounds keep the one they were played with."""
    await conn.execute(f"UPDATE {SCHEMA}.seeds SET client_seed = $2 WHERE id = $1", seed_id, client_seed)


async def reveal(conn: Connection, seed_id: int) -> SeedPair:
    """Retire a pair: its server seed becomes public."""
    row = await conn.fetchrow(
        f"UPDATE {SCHEMA}.seeds SET revealed_at = now() WHERE id = $1 RETURNING *", seed_id
    )
    assert row is not None
    return SeedPair.from_record(row)


async def seed_by_id(conn: Connection, seed_id: int) -> SeedPair | None:
    """Return a seed pair by id."""
    row = await conn.fetchrow(f"SELECT * FROM {SCHEMA}.seeds WHERE id = $1", seed_id)
    return None if row is None else SeedPair.from_record(row)
