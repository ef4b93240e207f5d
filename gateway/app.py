"""The gateway's app factory: resources as cleanup contexts, state under typed keys."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from gateway import callbacks, docs, health, keys, middleware
from gateway.api import create_api
from gateway.reconcile_job import ReconcileJob
from gateway.sessions import DEMO_SUFFIX, SessionStore
from gateway.settings import Settings
from gateway.stuck_rounds import StuckRounds
from gateway.tokens import SessionTokens
from providers import registry
from providers.base import Adapter
from providers.context import ProviderContext
from wallet.backends.base import OperatorWallet
from wallet.backends.ledger import LedgerWallet
from wallet.backends.seamless import SeamlessConfig, SeamlessWallet
from wallet.core import OperatorRuntime, Wallet
from wallet.db import create_pool
from wallet.ledger import SCHEMA
from wallet.metrics import Metrics
from wallet.migrate import migrate
from wallet.money import CurrencyTable
from wallet.outbox import OutboxWorker
from wallet.signing import Signer

# Operator-API bodies may be larger than callbacks; callbacks enforce their own 64 KiB limit.
APP_BODY_LIMIT = 1024 * 1024
# How long shutdown waits for the outbox pass under way (each operator call is bounded by its timeout).
STOP_OUTBOX_S = 30.0


async def _postgres(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    assert settings.database_url is not None
    pool = await create_pool(settings.database_url, max_size=settings.pool_size)
    async with pool.acquire() as conn:
        await migrate(conn, "wallet", SCHEMA)
        for name, adapter in app[keys.ADAPTERS].items():
            if adapter.migrations is not None:
                await migrate(conn, adapter.migrations, provider_schema(name))
    app[keys.PG_POOL] = pool
    yield
    await pool.close()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    assert settings.redis_url is not None
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=settings.redis_pool_size, timeout=settings.redis_wait_s
    )
    client = aioredis.Redis.from_pool(pool)  # the client owns the pool and closes it
    app[keys.REDIS] = client
    tokens = SessionTokens(settings.session_keys, settings.session_active_key)
    sessions = SessionStore(client, tokens, cache_s=settings.session_cache_s)
    app[keys.SESSIONS] = sessions
    follower = asyncio.create_task(sessions.follow_ended(), name="session-eviction")
    yield
    sessions.stop_following()
    # It returns within its poll on its own; asyncio.wait neither cancels nor waits forever.
    await asyncio.wait({follower}, timeout=5)
    follower.cancel()
    await client.aclose()


async def _http(app: web.Application) -> AsyncIterator[None]:
    # One long-lived session with keep-alive for every operator call.
    connector = aiohttp.TCPConnector(limit=200, limit_per_host=100, keepalive_timeout=30)
    session = aiohttp.ClientSession(connector=connector)
    app[keys.HTTP] = session
    yield
    await session.close()


def _backend(app: web.Application, name: str) -> OperatorWallet:
    op = app[keys.SETTINGS].operators[name]
    if op.backend == "ledger":
        return LedgerWallet()
    config = SeamlessConfig(
        operator=name,
        base_url=op.wallet_url,
        signer=Signer(op.key_id, op.secret),
        call_timeout_s=op.policy.call_timeout_s,
    )
    return SeamlessWallet(config, app[keys.HTTP], app[keys.METRICS])


async def _wallet(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    currencies = CurrencyTable(settings.currencies)
    operators = {
        name: OperatorRuntime(op.policy, _backend(app, name)) for name, op in settings.operators.items()
    }
    for name, op in settings.operators.items():
        # Demo play: each operator's play-money ledger, which never reaches the operator's wallet.
        demo = name + DEMO_SUFFIX
        operators[demo] = OperatorRuntime(replace(op.policy, name=demo, play_money=True), LedgerWallet())
    wallet = Wallet(
        app[keys.PG_POOL],
        operators,
        currencies,
        app[keys.METRICS],
        window_s=settings.engine_window_ms / 1000,
        max_batch=settings.engine_max_batch,
        writers=settings.engine_writers,
    )
    wallet.engine.start()
    app[keys.WALLET] = wallet
    app[keys.PROVIDER_CONTEXT] = ProviderContext(app[keys.SESSIONS], currencies, app[keys.PG_POOL])
    worker = OutboxWorker(wallet, interval_s=settings.outbox_interval_s)
    app[keys.OUTBOX] = worker
    task = asyncio.create_task(worker.run(), name="outbox")
    stuck = StuckRounds(app[keys.PG_POOL], wallet, app[keys.ADAPTERS], app[keys.PROVIDER_CONTEXT])
    job = ReconcileJob(
        app[keys.PG_POOL], wallet, settings.reconcile_interval_s, settings.reconcile_horizon_s, stuck
    )
    app[keys.RECONCILE_JOB] = job
    reconciling = (
        asyncio.create_task(job.run(), name="reconciliation") if settings.reconcile_interval_s > 0 else None
    )
    yield
    job.stop()
    if reconciling is not None:
        # A pass under way is let finish (it records its run in one transaction), within a bound.
        await asyncio.wait({reconciling}, timeout=STOP_OUTBOX_S)
        reconciling.cancel()
    # A pass is let finish rather than cancelled: cancelling asyncpg mid-statement can leave the
    # connection unusable, and a delivery cut short is only repeated by the next node anyway.
    worker.stop()
    try:
        await asyncio.wait_for(asyncio.shield(task), STOP_OUTBOX_S)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    # Requests still in flight have had their answers; what is queued is applied before the end.
    await wallet.engine.stop()


def provider_schema(name: str) -> str:
    """Return the schema an adapter's own tables live in."""
    return f"provider_{name}"


def load_adapters(
    settings: Settings, classes: Mapping[str, type[Adapter]] | None = None
) -> dict[str, Adapter]:
    """Instantiate the configured providers' adapters; a missing or bad plug-in fails here."""
    given = classes or {}
    return {
        name: (registry.check(name, given[name]) if name in given else registry.load(name))(config)
        for name, config in settings.providers.items()
    }


def create_app(
    settings: Settings, adapter_classes: Mapping[str, type[Adapter]] | None = None
) -> web.Application:
    """Build the gateway; `adapter_classes` supplies adapters not registered as plug-ins (the kit)."""
    if settings.database_url is None or settings.redis_url is None:
        raise ValueError("create_app needs database_url and redis_url (the CLI starts embedded ones)")
    CurrencyTable(settings.currencies)  # fail at start on a bad currency table
    app = web.Application(
        middlewares=[middleware.request_id, middleware.json_errors], client_max_size=APP_BODY_LIMIT
    )
    metrics = Metrics()
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = metrics
    app.cleanup_ctx.extend([_postgres, _redis, _http, _wallet])
    app.add_routes(health.routes)
    app.add_subapp("/v1", create_api(app, settings))
    app.add_routes(docs.routes)
    adapters = load_adapters(settings, adapter_classes)
    app[keys.ADAPTERS] = adapters
    for adapter in adapters.values():
        callbacks.mount(app, adapter, metrics)
    return app
