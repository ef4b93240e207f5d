"""Liveness, readiness with per-check detail, and Prometheus metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import asyncpg
import redis.exceptions
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.keys import METRICS, PG_POOL, REDIS, WALLET
from wallet.errors import UnavailableError

CHECK_TIMEOUT_S = 2.0
routes = web.RouteTableDef()


@routes.get("/livez")
async def livez(request: web.Request) -> web.Response:
    """Answer 200 while the process serves requests."""
    del request
    return web.json_response({"status": "ok"})


async def _check(probe: Awaitable[object]) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_S)
    except TimeoutError:
        return "timeout"
    except (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        redis.exceptions.RedisError,
        UnavailableError,
        OSError,
    ) as exc:
        return f"error: {exc}"
    return "ok"


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Check PostgreSQL, Redis and every operator's wallet; 503 with detail if any fails."""
    app = request.app
    probes: dict[str, Awaitable[object]] = {
        "postgres": app[PG_POOL].fetchval("SELECT 1"),
        "redis": app[REDIS].ping(),
    }
    for name, rt in app[WALLET].operators.items():
        if not rt.policy.play_money:  # a demo ledger is our own database, already checked
            probes[f"operator:{name}"] = rt.backend.ping()
    results = await asyncio.gather(*(_check(p) for p in probes.values()))
    checks = dict(zip(probes, results, strict=True))
    ready = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Export the app's Prometheus registry."""
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
