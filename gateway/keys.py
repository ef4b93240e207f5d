"""Typed application keys: the gateway's state, never module globals."""

from __future__ import annotations

import aiohttp
import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from gateway.reconcile_job import ReconcileJob
from gateway.sessions import SessionStore
from gateway.settings import Settings
from providers.base import Adapter
from providers.context import ProviderContext
from wallet.core import Wallet
from wallet.metrics import Metrics
from wallet.outbox import OutboxWorker

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
PG_POOL = web.AppKey("pg_pool", asyncpg.Pool)
REDIS = web.AppKey("redis", aioredis.Redis)
HTTP = web.AppKey("http", aiohttp.ClientSession)
WALLET = web.AppKey("wallet", Wallet)
SESSIONS = web.AppKey("sessions", SessionStore)
PROVIDER_CONTEXT = web.AppKey("provider_context", ProviderContext)
ADAPTERS = web.AppKey("adapters", dict[str, Adapter])
OUTBOX = web.AppKey("outbox", OutboxWorker)
RECONCILE_JOB = web.AppKey("reconcile_job", ReconcileJob)
# On the Operator API sub-app: the gateway it is mounted in, so a module's cleanup context reaches
# the gateway's resources (a sub-app's own state does not chain to its parent's).
GATEWAY = web.AppKey("gateway", web.Application)
