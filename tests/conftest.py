"""Test session fixtures: one real PostgreSQL and one real Redis, started by the session itself."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from gateway.embedded import embedded_postgres, embedded_redis


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Return the URL of the session's PostgreSQL (TEST_DATABASE_URL or an embedded one)."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    with (
        tempfile.TemporaryDirectory(prefix="croupier-pg-") as tmp,
        embedded_postgres(Path(tmp) / "data", delete=True) as url,
    ):
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """Return the URL of the session's Redis (TEST_REDIS_URL or an embedded one)."""
    external = os.environ.get("TEST_REDIS_URL")
    if external:
        yield external
        return
    with (
        tempfile.TemporaryDirectory(prefix="croupier-redis-") as tmp,
        embedded_redis(Path(tmp)) as url,
    ):
        yield url


def _with_database(url: str, name: str) -> str:
    """Return the URL with its database replaced."""
    base, _, query = url.partition("?")
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}" + (f"?{query}" if query else "")


@pytest.fixture
async def fresh_db(postgres_url: str) -> AsyncIterator[str]:
    """Create an empty database for one test and yield its URL."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield _with_database(postgres_url, name)
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def fresh_redis(redis_url: str) -> str:
    """Yield the Redis URL after flushing it, so each test starts with no sessions."""
    client = aioredis.from_url(redis_url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    return redis_url


@pytest.fixture
async def aiohttp_client(fresh_db: str, fresh_redis: str, aiohttp_client: Any) -> Any:
    """Return pytest-aiohttp's client factory, set up after the test's database and Redis.

    Fixtures are torn down in reverse: the apps it started (and their outbox workers) stop before
    the database is dropped, whatever order a test names its fixtures in.
    """
    del fresh_db, fresh_redis
    return aiohttp_client
