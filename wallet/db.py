"""Database types shared by the ledger, the backends and the reference wallet."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A connection straight from asyncpg.connect() or one lent by a pool: both serve every query.
if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
else:  # the classes are not subscriptable at run time
    Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy


async def reset_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Reset a connection returned to the pool: roll back a transaction left open, nothing more."""
    # asyncpg's default reset also unlocks advisory locks, closes cursors, unlistens and resets
    # settings: four statements on every release. Croupier holds none of those across a release
    # (advisory locks are released in `finally`, settings are SET LOCAL), so only a transaction
    # left open by a cancelled task needs undoing.
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    """Create the connection pool every Croupier component uses."""
    return await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, command_timeout=30, reset=reset_connection
    )
