"""Starting the backing services: external ones from URLs, or the embedded default."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterator

import asyncpg
from aiohttp import web

from gateway.embedded import embedded_postgres, embedded_redis
from gateway.settings import Settings


@contextlib.contextmanager
def backing_services(settings: Settings) -> Iterator[Settings]:
    """Yield settings whose database and Redis URLs are set, starting embedded servers if not."""
    with contextlib.ExitStack() as stack:
        database_url = settings.database_url or stack.enter_context(
            embedded_postgres(settings.data_dir.resolve() / "pgdata")
        )
        redis_url = settings.redis_url or stack.enter_context(
            embedded_redis(settings.data_dir.resolve() / "redis")
        )
        yield dataclasses.replace(settings, database_url=database_url, redis_url=redis_url)


@contextlib.asynccontextmanager
async def serve_app(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve an app on a free port of the host and yield its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    server = site._server  # noqa: SLF001 -- aiohttp keeps the bound port only here
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def with_database(url: str, name: str) -> str:
    """Return the URL with its database name replaced."""
    base, sep, query = url.partition("?")
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}{sep}{query}"


async def ensure_database(url: str, name: str, *, fresh: bool = False) -> str:
    """Create a database on the server behind `url` if missing (or anew) and return its URL."""
    conn = await asyncpg.connect(url)
    try:
        if fresh:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(url, name)
