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
