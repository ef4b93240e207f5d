"""The Operator API under /v1: catalogue, sessions, free rounds, rounds and responsible gaming."""

from __future__ import annotations

from aiohttp import web

from gateway import keys
from gateway.api import auth, campaigns, games, players, problems, reports, rounds, sessions
from gateway.settings import Settings


def create_api(parent: web.Application, settings: Settings) -> web.Application:
    """Build the Operator API sub-application; mounted at /v1, it shares the gateway's state."""
    api = web.Application(middlewares=[problems.problems, auth.authenticate])
    api[keys.GATEWAY] = parent
    api[auth.API_AUTH] = auth.ApiAuth.from_settings(settings)
    for module in (games, sessions, campaigns, rounds, players, reports):
        api.add_routes(module.routes)
        # A module's own services start after the gateway's (a sub-app's start follows its parent's).
        api.cleanup_ctx.extend(getattr(module, "cleanup_ctx", ()))
    return api
