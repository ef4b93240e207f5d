"""Starting the backing services: external ones from URLs, or the embedded default."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import asyncpg
import redis.asyncio as aioredis
import redis.exceptions
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


class UnreachableError(Exception):
    """A backing service or port named in the settings cannot be used: the message says which."""


# A user waiting on a wrong URL wants the answer in seconds, not after the driver's default minute.
CHECK_TIMEOUT_S = 5.0


def _where(url: str) -> str:
    """Return host, port and database of a URL, leaving out any password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "an unparsable URL"
    return f"{host}{parts.path}"


async def connect_database(url: str) -> asyncpg.Connection:
    """Open one connection, or raise UnreachableError naming the server and what went wrong."""
    try:
        return await asyncpg.connect(url, timeout=CHECK_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = str(exc) or type(exc).__name__
        raise UnreachableError(
            f"cannot reach the database at {_where(url)} ({reason}): check DATABASE_URL or database_url"
        ) from exc


async def check_backing_services(settings: Settings) -> None:
    """Connect once to PostgreSQL and ping Redis, so a wrong URL is one clear line at start."""
    assert settings.database_url is not None
    assert settings.redis_url is not None
    conn = await connect_database(settings.database_url)
    await conn.close()
    client = aioredis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=CHECK_TIMEOUT_S, socket_timeout=CHECK_TIMEOUT_S
    )
    try:
        await client.ping()
    except (OSError, ValueError, redis.exceptions.RedisError) as exc:
        reason = str(exc) or type(exc).__name__
        raise UnreachableError(
            f"cannot reach Redis at {_where(settings.redis_url)} ({reason}): check REDIS_URL or redis_url"
        ) from exc
    finally:
        await client.aclose()


def check_port(host: str, port: int) -> None:
    """Bind the address once, so a port in use is named before any server is started."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        reason = exc.strerror or exc
        raise UnreachableError(f"cannot listen on {host}: {reason}: check --host or host") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise UnreachableError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}: choose another --port"
            ) from exc


def with_database(url: str, name: str) -> str:
    """Return the URL with its database name replaced."""
    base, sep, query = url.partition("?")
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}{sep}{query}"


async def ensure_database(url: str, name: str, *, fresh: bool = False) -> str:
    """Create a database on the server behind `url` if missing (or anew) and return its URL."""
    conn = await connect_database(url)
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
