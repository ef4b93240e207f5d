"""Mounts each adapter's routes and runs the one path every provider callback takes."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg
import redis.exceptions
from aiohttp import web

from gateway.keys import PROVIDER_CONTEXT, WALLET
from providers.base import Adapter, Batch, Route
from providers.context import ProviderContext
from wallet.core import Wallet
from wallet.errors import BodyTooLargeError, UnavailableError, WalletError
from wallet.metrics import Metrics
from wallet.operations import Operation, Result

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def read_body(request: web.Request, limit: int) -> bytes:
    """Read the body, refusing one over the limit without reading it all."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLargeError(f"body larger than {limit} bytes")
    # StreamReader.read(n) returns what has arrived so far; a body in several segments needs a loop.
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await request.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    body = b"".join(chunks)
    if len(body) > limit:
        raise BodyTooLargeError(f"body larger than {limit} bytes")
    return body


def _outcome(error: WalletError) -> str:
    return type(error).__name__.removesuffix("Error").lower()


async def _run_batch(
    adapter: Adapter, route: Route, batch: Batch, wallet: Wallet, ctx: ProviderContext
) -> tuple[web.StreamResponse, str]:
    """Apply a batch in order, stopping at the first error; return the answer and its outcome label."""
    outcomes: list[Result | WalletError] = []
    label = "ok"
    for op in batch.operations:
        try:
            outcomes.append(await wallet.execute(op, adapter.capabilities))
        except WalletError as exc:
            outcomes.append(exc)
            label = _outcome(exc)
            break
    results = [o for o in outcomes if isinstance(o, Result)]
    if label == "ok" and results and all(r.replay for r in results):
        label = "replay"
    return adapter.render_batch(route, batch, outcomes, ctx), label


def make_handler(adapter: Adapter, route: Route, metrics: Metrics) -> Handler:
    """Return the aiohttp handler for one route of one adapter."""
    provider = adapter.name

    async def handle(request: web.Request) -> web.StreamResponse:
        wallet = request.app[WALLET]
        ctx = request.app[PROVIDER_CONTEXT]
        started = time.perf_counter()
        op: Operation | None = None
        outcome = "ok"
        try:
            body = await read_body(request, adapter.max_body_bytes)
            adapter.authenticate(request, body)
            parsed = await adapter.parse(route, request, body, ctx)
            if isinstance(parsed, Batch):
                response, outcome = await _run_batch(adapter, route, parsed, wallet, ctx)
                return response
            op = parsed
            result = await wallet.execute(op, adapter.capabilities)
            if result.replay:
                outcome = "replay"
            return adapter.render(route, op, result, ctx)
        except WalletError as exc:
            outcome = _outcome(exc)
            return adapter.render_error(route, exc, op, ctx)
        except (
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            redis.exceptions.RedisError,
            OSError,
        ) as exc:
            # Our own storage failed: nothing definite happened, so the provider should retry.
            log.warning("%s %s: storage unavailable: %r", provider, route.operation, exc)
            outcome = "unavailable"
            return adapter.render_error(route, UnavailableError("storage unavailable"), op, ctx)
        finally:
            metrics.requests.labels(provider, route.operation, outcome).inc()
            metrics.request_latency.labels(provider, route.operation, outcome).observe(
                time.perf_counter() - started
            )

    return handle


def mount(app: web.Application, adapter: Adapter, metrics: Metrics) -> None:
    """Add an adapter's routes under /providers/<name>."""
    for extra in adapter.extra_routes():
        assert isinstance(extra, web.RouteDef)
        app.router.add_route(extra.method, f"/providers/{adapter.name}{extra.path}", extra.handler)
    for route in adapter.routes:
        handler = make_handler(adapter, route, metrics)
        app.router.add_route(route.method, f"/providers/{adapter.name}{route.path}", handler)
